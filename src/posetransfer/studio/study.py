"""The user study of PG2 ("Pose Guided Person Image Generation", Ma et al. 2017, sec. 4.3) served
on the web: participants, their answers in SQLite, R2G / G2R with confidence intervals.

PG2's protocol: a shuffled mix of real and generated images, shown one at a time for one second;
the participant answers "real" or "generated"; each participant's first 10 answers are practice
and not counted; R2G is the share of real images rated generated, G2R the share of generated
images rated real, pooled over the participants (as in the paper's Table 2).

The image set and its answer key are written once by
:func:`posetransfer.evaluation.study.export_study` (the file-based flow, which this wraps) into
``<state>/study/``; a restart finds them there and reuses them, so the answers in
``<state>/study.sqlite`` keep pointing at the same images. The CSV export has the columns
``rater,image,answer`` that ``posetransfer study score`` reads, plus the truth and the position.

SQLite (stdlib ``sqlite3``) in WAL mode: readers do not block the writer, and every answer is a
short ``BEGIN IMMEDIATE`` transaction, so concurrent participants (one thread per request) are
serialised by SQLite itself. One connection per call keeps threads from sharing a connection.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from posetransfer.errors import DataError, PosetransferError
from posetransfer.evaluation.study import TRUTHS, export_study, read_answer_key
from posetransfer.utils.io import atomic_write_json

PRACTICE = 10  # PG2 sec. 4.3: the first 10 images are practice
SHOW_MS = 1000  # PG2 sec. 4.3: each image is shown for one second
DEFAULT_PER_KIND = 55  # PG2 sec. 4.3: 55 real and 55 generated images

_SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    sequence TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    participant TEXT NOT NULL REFERENCES participants(id),
    position INTEGER NOT NULL,
    image TEXT NOT NULL,
    truth TEXT NOT NULL,
    answer TEXT NOT NULL,
    ms INTEGER,
    created REAL NOT NULL,
    PRIMARY KEY (participant, image),
    UNIQUE (participant, position)
);
"""


class StudyError(PosetransferError):
    """A request the study cannot accept; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion k/n (scipy's ``binomtest``); None when n = 0."""
    if n == 0:
        return None
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def study_images(folder: Path) -> list[Path]:
    """The images of a study input folder: its own images, else those of ``images/`` or ``test/images/``."""
    from posetransfer.data.layouts import list_images

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "is not a folder")
    for candidate in (folder, folder / "images", folder / "test" / "images"):
        if candidate.is_dir():
            names = list_images(candidate)
            if names:
                return [candidate / n for n in names]
    raise DataError(folder, "holds no images (looked in the folder, images/ and test/images/)")


class Study:
    """The study set in ``root`` (``images/``, ``answer_key.csv``, ``meta.json``) and the answers DB."""

    def __init__(self, root: Path, db_path: Path, practice: int = PRACTICE, show_ms: int = SHOW_MS):
        self.root = Path(root)
        self.images_dir = self.root / "images"
        self.key = read_answer_key(self.root / "answer_key.csv")
        self.practice = int(practice)
        self.show_ms = int(show_ms)
        self.db_path = Path(db_path)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    # -- creation ----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        state_dir: Path,
        generated: Path,
        real: Path,
        per_kind: int = DEFAULT_PER_KIND,
        seed: int = 0,
        **kwargs,
    ) -> "Study":
        """The study of ``state_dir``: written from the two folders the first time, reused after.

        ``per_kind`` real and as many generated images (fewer when a folder holds fewer). A state
        folder whose study was made from other folders is refused rather than silently mixed.
        """
        state_dir = Path(state_dir)
        root = state_dir / "study"
        meta_path = root / "meta.json"
        wanted = {"generated": str(Path(generated).resolve()), "real": str(Path(real).resolve()),
                  "per_kind": int(per_kind), "seed": int(seed)}  # fmt: skip
        if meta_path.is_file():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if {k: meta.get(k) for k in wanted} != wanted:
                raise DataError(
                    root,
                    f"holds a study made from {meta.get('generated')} and {meta.get('real')} "
                    f"({meta.get('per_kind')} per kind); give another --state folder for a new study",
                )
        else:
            gen, rl = study_images(generated), study_images(real)
            n = min(int(per_kind), len(gen), len(rl))
            if n < 1:
                raise DataError(root, "a study needs at least one real and one generated image")
            export_study(rl, gen, root, n_real=n, n_gen=n, seed=seed)
            atomic_write_json(meta_path, {**wanted, "n_real": n, "n_generated": n})
        return cls(root, state_dir / "study.sqlite", **kwargs)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    # -- participants and answers -----------------------------------------------------------

    def image_path(self, name: str) -> Path:
        """The file of a study image; only names of the answer key are accepted (no paths)."""
        if name not in self.key:
            raise StudyError(f"no study image {name!r}", 404)
        return self.images_dir / name

    def new_participant(self) -> dict:
        """A participant with a generated id and their own random order of every study image."""
        pid = secrets.token_hex(8)
        rng = np.random.default_rng(secrets.randbits(64))
        names = sorted(self.key)
        sequence = [names[i] for i in rng.permutation(len(names))]
        with self._connect() as db:
            db.execute("INSERT INTO participants (id, created, sequence) VALUES (?, ?, ?)",
                       (pid, time.time(), json.dumps(sequence)))  # fmt: skip
        return {"participant": pid, "sequence": sequence, "practice": self.practice, "show_ms": self.show_ms,
                "answered": 0}  # fmt: skip

    def participant(self, pid: str) -> dict:
        with self._connect() as db:
            row = db.execute("SELECT sequence FROM participants WHERE id = ?", (pid,)).fetchone()
            if row is None:
                raise StudyError(f"unknown participant {pid!r}", 404)
            answered = db.execute("SELECT COUNT(*) FROM answers WHERE participant = ?", (pid,)).fetchone()[0]
        return {"participant": pid, "sequence": json.loads(row[0]), "practice": self.practice,
                "show_ms": self.show_ms, "answered": int(answered)}  # fmt: skip

    def answer(self, pid: str, image: str, answer: str, ms: int | None = None) -> dict:
        """Record one answer; its position is the participant's count of answers so far."""
        answer = str(answer).strip().lower()
        if answer not in TRUTHS:
            raise StudyError(f"answer must be 'real' or 'generated', got {answer!r}")
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT sequence FROM participants WHERE id = ?", (pid,)).fetchone()
                if row is None:
                    raise StudyError(f"unknown participant {pid!r}", 404)
                if image not in json.loads(row[0]):
                    raise StudyError(f"image {image!r} is not in this participant's sequence", 400)
                if db.execute("SELECT 1 FROM answers WHERE participant = ? AND image = ?", (pid, image)).fetchone():
                    raise StudyError(f"image {image!r} was already answered by this participant", 409)
                position = db.execute("SELECT COUNT(*) FROM answers WHERE participant = ?", (pid,)).fetchone()[0]
                db.execute(
                    "INSERT INTO answers (participant, position, image, truth, answer, ms, created) VALUES (?,?,?,?,?,?,?)",
                    (pid, position, image, self.key[image], answer, ms, time.time()),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        total = len(self.key)
        return {"answered": position + 1, "remaining": total - position - 1, "practice": position < self.practice}

    def _rows(self) -> list[tuple]:
        with self._connect() as db:
            return db.execute(
                "SELECT a.participant, a.position, a.image, a.truth, a.answer, a.ms, a.created "
                "FROM answers a JOIN participants p ON p.id = a.participant ORDER BY p.created, a.participant, a.position"
            ).fetchall()

    def results(self) -> dict:
        """R2G and G2R over the scored answers (practice left out), Wilson 95% intervals, per participant."""
        per: dict[str, dict] = {}
        pooled = {"real": [0, 0], "generated": [0, 0]}  # truth -> [wrong, total]
        for pid, position, _image, truth, answer, _ms, _t in self._rows():
            p = per.setdefault(pid, {"participant": pid, "answered": 0, "practice": 0, "real": 0,
                                     "real_rated_generated": 0, "generated": 0, "generated_rated_real": 0})  # fmt: skip
            p["answered"] += 1
            if position < self.practice:
                p["practice"] += 1
                continue
            p[truth] += 1
            wrong = answer != truth
            p["real_rated_generated" if truth == "real" else "generated_rated_real"] += wrong
            pooled[truth][0] += wrong
            pooled[truth][1] += 1
        with self._connect() as db:
            n_participants = db.execute("SELECT COUNT(*) FROM participants").fetchone()[0]

        def rate(kind: str) -> dict:
            k, n = pooled[kind]
            ci = wilson_interval(k, n)
            return {"rate": k / n if n else None, "count": k, "n": n, "ci95": list(ci) if ci else None}

        return {
            "r2g": rate("real"),
            "g2r": rate("generated"),
            "practice": self.practice,
            "show_ms": self.show_ms,
            "images": {"real": sum(t == "real" for t in self.key.values()),
                       "generated": sum(t == "generated" for t in self.key.values())},  # fmt: skip
            "participants_started": int(n_participants),
            "participants": list(per.values()),
            "interval": "Wilson score 95% on the pooled answers (treats answers as independent)",
        }

    def export_csv(self) -> str:
        """Every answer, in order: ``rater,image,answer`` (what ``study score`` reads) and more."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["rater", "image", "answer", "truth", "position", "practice", "ms", "answered_at"])
        for pid, position, image, truth, answer, ms, created in self._rows():
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
            writer.writerow([pid, image, answer, truth, position, int(position < self.practice), ms or "", stamp])
        return buf.getvalue()

