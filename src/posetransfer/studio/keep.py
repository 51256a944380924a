"""The studio's state folder kept tidy and consistent across days and restarts.

A studio left running for days would otherwise fill the disk with uploaded clips, renders and
transfer results, and a render cut by a restart would say ``"running"`` forever. :class:`Keeper`
does three things:

- :meth:`Keeper.recover` (on start-up, before anything is served): every item whose ``meta.json``
  says ``queued`` or ``running`` was cut by the restart (no job survives one); it is marked
  ``"failed"`` with :data:`INTERRUPTED` as its ``error``, so the API and the page show that
  instead of polling forever.
- :meth:`Keeper.sweep` (on start-up, after a job unless one began within ``Retention.job_gap_s``,
  and every ``Retention.sweep_every_s``): removes the finished items older than ``keep_hours``,
  then the oldest finished items while the items together are larger than ``max_state_mb``
  (sparing those finished within ``grace_s``, so a fresh result can still be downloaded), the
  half-written items (no ``meta.json``: e.g. a studio killed during an upload) once they are
  ``grace_s`` old, and ``tmp/`` leftovers as old.
- :meth:`Keeper.pin` marks an item in use (an upload being tracked, a render and the track it
  reads, a result being written): the sweep never removes a pinned item, nor one whose
  ``meta.json`` says ``queued``/``running``. An item is removed by renaming it into ``tmp/`` under
  the keeper's lock (the check "not pinned" and the rename are one step, so a render request that
  pins its track first either finds it whole or not at all) and deleting it there.

Items are the generated-id folders of ``results/`` (transfers) and ``animate/`` (tracks, renders).
The study (``study/``, ``study.sqlite``) is the experiment's data, never removed nor counted.
Nothing outside the state folder is touched: paths are resolved, a symlinked area or item is
skipped, sizes are ``lstat`` sizes (a link counts as a link), and ``shutil.rmtree`` unlinks links
inside an item without following them. One server per state folder (pins are in memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
import secrets
import shutil
import stat
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator

from posetransfer.utils.io import atomic_write_json

AREAS = ("results", "animate")  # the folders of the state whose generated-id items the sweep manages
ITEM_ID = re.compile(r"^[0-9]{13}-[0-9a-f]{6}$")  # the ids of app.Studio.save_result and animate.new_id
ACTIVE = frozenset({"queued", "running"})
FAILED = "failed"
INTERRUPTED = "interrupted by a restart of the studio"
_TRASH = ".removing-"  # prefix of the items being deleted in tmp/
_MB = 1024 * 1024  # as --max-upload-mb


@dataclasses.dataclass
class Retention:
    """What the sweep keeps. ``keep_hours`` / ``max_state_mb`` of 0 mean no limit of that kind."""

    keep_hours: float = 168.0  # a week
    max_state_mb: float = 2048.0  # the results, clips and renders together
    grace_s: float = 900.0  # a half-written item's age before removal; finished items this young are spared by the size limit
    sweep_every_s: float = 600.0  # the periodic sweep (also one on start-up and one after each job)
    job_gap_s: float = 30.0  # a job's sweep is skipped when the last sweep began less than this ago

    def __post_init__(self):
        for name in ("keep_hours", "max_state_mb", "grace_s", "job_gap_s"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"Retention.{name} must be >= 0, got {value!r}")
        if not self.sweep_every_s > 0:
            raise ValueError(f"Retention.sweep_every_s must be > 0, got {self.sweep_every_s!r}")


@dataclasses.dataclass
class Item:
    area: str
    id: str
    path: Path
    size: int  # bytes of its regular files (lstat)
    newest: float  # the newest mtime of the folder and its files
    finished: float | None  # the mtime of meta.json (written last, when the item is complete); None: half-written
    status: str | None  # meta.json's "status" (transfer results have none)

    @property
    def key(self) -> tuple[str, str]:
        return self.area, self.id


@dataclasses.dataclass
class SweepReport:
    removed: list[tuple[str, str, str]]  # (area, id, reason) in the order removed
    freed: int  # bytes
    kept: int  # items left
    kept_bytes: int
    tmp_removed: int = 0

    def line(self, retention: Retention) -> str:
        why = Counter(reason for _, _, reason in self.removed)
        parts = [f"{n} {reason}" for reason, n in why.items()]
        if self.tmp_removed:
            parts.append(f"{self.tmp_removed} tmp/ leftover(s)")
        return (f"state sweep: removed {len(self.removed)} item(s) ({', '.join(parts)}), freed {self.freed / _MB:.1f} MB; "
                f"kept {self.kept} item(s), {self.kept_bytes / _MB:.1f} MB")  # fmt: skip


def _stderr(line: str) -> None:
    print(f"posetransfer studio: {line}", file=sys.stderr, flush=True)


class Keeper:
    """Recovery, pins and the sweep of one state folder (module doc)."""

    def __init__(self, state: Path, retention: Retention | None = None, log: Callable[[str], None] | None = None):
        self.root = Path(state).resolve()
        self.retention = retention or Retention()
        self.log = log or _stderr
        self._lock = threading.Lock()  # pins and the check-and-rename of a removal
        self._sweeping = threading.Lock()  # one sweep at a time
        self._pins: Counter = Counter()
        self._sizes: dict[tuple[str, str], tuple[int, int, str | None]] = {}  # finished item -> (meta mtime_ns, size, status)
        self.sweeps = 0
        self._last_sweep = -float("inf")  # time.monotonic() when the last sweep began

    # pins ------------------------------------------------------------------------------------

    def pin(self, area: str, iid: str) -> None:
        with self._lock:
            self._pins[(area, iid)] += 1

    def unpin(self, area: str, iid: str) -> None:
        with self._lock:
            self._pins[(area, iid)] -= 1
            if self._pins[(area, iid)] <= 0:
                del self._pins[(area, iid)]

    @contextlib.contextmanager
    def pinned(self, area: str, iid: str) -> Iterator[None]:
        self.pin(area, iid)
        try:
            yield
        finally:
            self.unpin(area, iid)

    def is_pinned(self, area: str, iid: str) -> bool:
        with self._lock:
            return (area, iid) in self._pins

    # the folders -----------------------------------------------------------------------------

    def _area(self, area: str) -> Path | None:
        """The area's folder, or None when it is missing or not a real folder inside the state."""
        path = self.root / area
        try:
            if path.is_symlink() or not path.is_dir() or path.resolve().parent != self.root:
                return None
        except OSError:
            return None
        return path

    def _items(self) -> Iterator[tuple[str, Path]]:
        for area in AREAS:
            folder = self._area(area)
            if folder is None:
                continue
            with os.scandir(folder) as entries:
                for e in entries:
                    # a symlink is never followed nor removed: not made by the studio
                    if ITEM_ID.match(e.name) and e.is_dir(follow_symlinks=False):
                        yield area, Path(e.path)

    @staticmethod
    def _measure(path: Path) -> tuple[int, float]:
        """(bytes of the regular files under ``path``, newest mtime), never following a link."""
        size, newest = 0, os.lstat(path).st_mtime
        stack = [path]
        while stack:
            with os.scandir(stack.pop()) as entries:
                for e in entries:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    newest = max(newest, st.st_mtime)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(Path(e.path))
                    elif stat.S_ISREG(st.st_mode):
                        size += st.st_size
        return size, newest

    def scan(self) -> list[Item]:
        """Every item of the areas, oldest first (by when it was finished, else its newest file)."""
        items = []
        for area, path in self._items():
            key = (area, path.name)
            meta_path = os.path.join(path, "meta.json")
            try:
                try:
                    st = os.lstat(meta_path)
                except FileNotFoundError:
                    st = None
                if st is None or not stat.S_ISREG(st.st_mode):  # no meta.json (or a link in its place): half-written
                    size, newest = self._measure(path)
                    items.append(Item(area, path.name, path, size, newest, None, None))
                    continue
                cached = self._sizes.get(key)
                if cached is not None and cached[0] == st.st_mtime_ns:
                    size, status = cached[1], cached[2]
                else:
                    status = _read_status(Path(meta_path))
                    size, _ = self._measure(path)
                    if status not in ACTIVE:  # finished: its size no longer changes
                        self._sizes[key] = (st.st_mtime_ns, size, status)
                newest = st.st_mtime
                items.append(Item(area, path.name, path, size, newest, st.st_mtime, status))
            except FileNotFoundError:  # removed meanwhile (a refused upload cleaning itself up)
                continue
        seen = {it.key for it in items}
        for key in [k for k in self._sizes if k not in seen]:
            del self._sizes[key]
        items.sort(key=lambda it: (it.finished if it.finished is not None else it.newest, it.id))
        return items

    # recovery --------------------------------------------------------------------------------

    def recover(self, now: float | None = None) -> list[tuple[str, str]]:
        """Mark every ``queued``/``running`` item ``"failed"`` (start-up: no job survives a restart)."""
        now = time.time() if now is None else now
        marked = []
        for area, path in self._items():
            meta_path = path / "meta.json"
            if meta_path.is_symlink() or not meta_path.is_file():
                continue
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict) and meta.get("status") in ACTIVE:
                meta.update(status=FAILED, error=INTERRUPTED, finished=now)
                try:
                    atomic_write_json(meta_path, meta)
                except OSError as err:
                    self.log(f"could not mark the job cut by the restart as failed: {meta_path}: {err.strerror or err}")
                    continue
                marked.append((area, path.name))
        if marked:
            self.log(f"marked {len(marked)} job(s) cut by the restart as failed: {', '.join(i for _, i in marked)}")
        return marked

    # the sweep -------------------------------------------------------------------------------

    def _remove(self, item: Item) -> bool:
        """Rename the item into tmp/ (if not pinned, under the lock), then delete it there."""
        tmp = self.root / "tmp"
        tmp.mkdir(exist_ok=True)
        trash = tmp / f"{_TRASH}{item.area}-{item.id}-{secrets.token_hex(3)}"
        with self._lock:
            if item.key in self._pins:
                return False
            try:
                # exactly where an item of the area lies (self.root is resolved): no link on the way
                if item.path.is_symlink() or item.path.resolve() != self.root / item.area / item.id:
                    return False
                os.rename(item.path, trash)
            except OSError:
                return False
        shutil.rmtree(trash, ignore_errors=True)
        self._sizes.pop(item.key, None)
        return True

    def _sweep_tmp(self, now: float) -> int:
        folder = self._area("tmp")
        if folder is None:
            return 0
        removed = 0
        with os.scandir(folder) as entries:
            for e in entries:
                try:
                    st = e.stat(follow_symlinks=False)
                    if stat.S_ISLNK(st.st_mode):
                        continue
                    if not e.name.startswith(_TRASH) and now - st.st_mtime <= self.retention.grace_s:
                        continue  # e.g. an image being decoded right now
                    if stat.S_ISDIR(st.st_mode):
                        shutil.rmtree(e.path, ignore_errors=True)
                    else:
                        os.unlink(e.path)
                    removed += not e.name.startswith(_TRASH)
                except OSError:
                    continue
        return removed

    def sweep(self, now: float | None = None) -> SweepReport | None:
        """One sweep (module doc); None when another one is running or it failed (said in one line).

        Logs one line if it removed anything. Never raises: a sweep runs after a job whose answer
        must not turn into an error, and on start-up.
        """
        if not self._sweeping.acquire(blocking=False):
            return None
        try:
            self._last_sweep = time.monotonic()
            return self._sweep(time.time() if now is None else now)
        except Exception as err:  # noqa: BLE001 - e.g. an unreadable folder put in the state by hand
            self.log(f"state sweep failed: {type(err).__name__}: {err}")
            return None
        finally:
            self._sweeping.release()

    def _sweep(self, now: float) -> SweepReport:
        r = self.retention
        items = self.scan()
        removed: list[tuple[str, str, str]] = []
        freed = 0
        left = []

        def busy(it: Item) -> bool:
            return it.status in ACTIVE or self.is_pinned(*it.key)

        for it in items:
            reason = None
            if busy(it):
                pass
            elif it.finished is None:
                if now - it.newest > r.grace_s:
                    reason = "half-written"
            elif r.keep_hours and now - it.finished > r.keep_hours * 3600:
                reason = f"older than {r.keep_hours:g} h"
            if reason is not None and self._remove(it):
                removed.append((*it.key, reason))
                freed += it.size
            else:
                left.append(it)
        if r.max_state_mb:
            limit = r.max_state_mb * _MB
            total = sum(it.size for it in left)
            kept = []
            for it in left:  # oldest first
                if (total > limit and not busy(it) and it.finished is not None and now - it.finished > r.grace_s
                        and self._remove(it)):  # fmt: skip
                    removed.append((*it.key, f"over {r.max_state_mb:g} MB"))
                    total -= it.size
                    freed += it.size
                else:
                    kept.append(it)
            left = kept
        report = SweepReport(removed, freed, len(left), sum(it.size for it in left), self._sweep_tmp(now))
        self.sweeps += 1
        if report.removed or report.tmp_removed:
            self.log(report.line(r))
        return report

    def after_job(self) -> SweepReport | None:
        """The sweep after a job, unless one began less than ``retention.job_gap_s`` ago.

        A sweep costs about 20-25 microseconds an item once their sizes are cached (2,000 items:
        39-53 ms, measured here at a load average of 1.3; the first sweep 316 ms), and a studio
        serving 30 transfers a second (docs/benchmarks.md) holds thousands of results within
        minutes: a sweep after every job would cost more than the job. The periodic sweep
        catches what a skipped one would have removed.
        """
        if time.monotonic() - self._last_sweep < self.retention.job_gap_s:
            return None
        return self.sweep()

    async def run_periodically(self) -> None:
        """Sweep every ``retention.sweep_every_s`` in a worker thread (the app's lifespan task)."""
        import anyio

        while True:
            await asyncio.sleep(self.retention.sweep_every_s)
            await anyio.to_thread.run_sync(self.sweep)


def _read_status(path: Path) -> str | None:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    status = meta.get("status") if isinstance(meta, dict) else None
    return status if isinstance(status, str) else None
