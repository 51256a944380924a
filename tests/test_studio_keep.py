"""The studio's state folder kept tidy and consistent (studio/keep.py), through the FastAPI test
client: the age and size limits, half-written items, what is never removed (jobs in progress, the
track a render reads, anything outside the state folder), and jobs cut by a restart marked failed.

Ages are made by setting mtimes (the sweep dates a finished item by its meta.json), never by sleeping.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from _studio import LibraryBackend, SilhouetteBackend, png, tiny_runs, walking_clip  # noqa: E402
from posetransfer.inference import Pipeline  # noqa: E402
from posetransfer.studio.app import create_app  # noqa: E402
from posetransfer.studio.keep import INTERRUPTED, Keeper, Retention  # noqa: E402

HOUR = 3600.0


def age(path: Path, hours: float) -> None:
    """Date ``path`` (a file, a folder, or a symlink itself) ``hours`` back."""
    t = time.time() - hours * HOUR
    os.utime(path, (t, t), follow_symlinks=False)


def make_item(state: Path, area: str, n: int, *, hours: float = 0.0, meta: dict | None = None,
              files: dict[str, int] | None = None) -> str:  # fmt: skip
    """An item as the studio writes it: ``AREA/ID/`` with files of the given sizes and (unless
    ``meta`` is None: half-written) a meta.json, everything dated ``hours`` back."""
    iid = f"{1_700_000_000_000 + n:013d}-{n:06x}"
    folder = state / area / iid
    folder.mkdir(parents=True)
    for name, size in (files or {}).items():
        (folder / name).write_bytes(b"x" * size)
    if meta is not None:
        (folder / "meta.json").write_text(json.dumps({"id": iid, "created": time.time() - hours * HOUR, **meta}))
    for p in [*folder.iterdir(), folder]:
        age(p, hours)
    return iid


TRACK = {"kind": "track", "status": "done", "frames": 3, "fps": 10.0}
RENDER = {"kind": "render", "status": "done", "format": "mp4", "frames": 3, "frames_done": 3}


def exists(state: Path, area: str, iid: str) -> bool:
    return (state / area / iid).exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tiny_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def pipe(runs):
    return Pipeline.from_checkpoint(runs["stage2"], device="cpu", backend=LibraryBackend())


def test_age_limit_after_a_job_and_on_start_up(pipe, tmp_path, capsys):
    state = tmp_path / "state"
    client = TestClient(create_app(pipe, None, state, retention=Retention(keep_hours=24, job_gap_s=0)))
    photo = png(tmp_path / "me.png")
    src = {"source": ("me.png", photo.read_bytes(), "image/png")}
    rids = [client.post("/api/transfer", files=src, data={"pose": p}).headers["x-result-id"] for p in ("walking", "side", "arms_up")]
    for rid, hours in zip(rids, (50, 23, 0)):
        age(state / "results" / rid / "meta.json", hours)
    old_track = make_item(state, "animate", 1, hours=30, meta=TRACK, files={"driving": 10, "track.csv": 10})
    capsys.readouterr()
    # the next job's sweep removes what is older than 24 h, across both areas; young ones stay
    new = client.post("/api/transfer", files=src, data={"pose": "walking"}).headers["x-result-id"]
    listed = [r["id"] for r in client.get("/api/results").json()["results"]]
    assert listed == [new, rids[2], rids[1]]
    assert client.get(f"/api/results/{rids[0]}/result.png").status_code == 404
    assert client.get(f"/api/animate/{old_track}").status_code == 404 and not exists(state, "animate", old_track)
    err = capsys.readouterr().err
    assert err.count("state sweep:") == 1 and "removed 2 item(s) (2 older than 24 h)" in err, err
    # a sweep that removes nothing says nothing
    client.app.state.studio.keeper.sweep()
    assert "state sweep" not in capsys.readouterr().err
    # a restart with a shorter limit sweeps on start-up, before any request
    client2 = TestClient(create_app(pipe, None, state, retention=Retention(keep_hours=12)))
    assert [r["id"] for r in client2.get("/api/results").json()["results"]] == [new, rids[2]]
    assert "removed 1 item(s) (1 older than 12 h)" in capsys.readouterr().err
    # a job's sweep is skipped within job_gap_s of the last one (the periodic sweep catches up)
    client3 = TestClient(create_app(pipe, None, state, retention=Retention(keep_hours=12, job_gap_s=3600)))
    age(state / "results" / rids[2] / "meta.json", 13)
    keeper = client3.app.state.studio.keeper
    assert keeper.sweeps == 1  # the start-up one
    client3.post("/api/transfer", files=src, data={"pose": "walking"})
    assert keeper.sweeps == 1 and exists(state, "results", rids[2])
    assert keeper.sweep().removed == [("results", rids[2], "older than 12 h")]
    capsys.readouterr()
    # keep_hours 0: no age limit
    age(state / "results" / new / "meta.json", 10_000)
    TestClient(create_app(pipe, None, state, retention=Retention(keep_hours=0)))
    assert exists(state, "results", new)


def test_size_limit_removes_the_oldest_first(tmp_path, capsys):
    state = tmp_path / "state"
    big = {"result.png": 100_000}
    a = make_item(state, "results", 1, hours=5, meta={"pose": "custom"}, files=big)
    b = make_item(state, "animate", 2, hours=4, meta=TRACK, files={"driving": 100_000})
    c = make_item(state, "animate", 3, hours=3, meta=RENDER, files={"result.mp4": 100_000})
    d = make_item(state, "results", 4, hours=2, meta={"pose": "custom"}, files=big)
    e = make_item(state, "results", 5, hours=0.1, meta={"pose": "custom"}, files=big)  # 6 min: within the grace
    sizes = {i: sum(p.stat().st_size for p in (state / area / i).iterdir())
             for area, i in (("results", a), ("animate", b), ("animate", c), ("results", d), ("results", e))}  # fmt: skip
    total = sum(sizes.values())
    limit_mb = 0.3  # 314572.8 bytes: removing a leaves 4 items (> 400 kB), removing b too leaves 3 (< 301 kB)
    assert total - sizes[a] > limit_mb * 2**20 >= total - sizes[a] - sizes[b]
    client = TestClient(create_app(None, None, state, retention=Retention(keep_hours=0, max_state_mb=limit_mb)))
    assert not exists(state, "results", a) and not exists(state, "animate", b)
    assert client.get(f"/api/animate/{b}").status_code == 404 and client.get(f"/api/animate/{c}").json()["status"] == "done"
    assert [r["id"] for r in client.get("/api/results").json()["results"]] == [e, d]
    err = capsys.readouterr().err
    assert "removed 2 item(s) (2 over 0.3 MB)" in err and f"kept 3 item(s), {(total - sizes[a] - sizes[b]) / 2**20:.1f} MB" in err
    report = client.app.state.studio.keeper.sweep()
    assert report.removed == [] and report.kept_bytes == total - sizes[a] - sizes[b]
    # a tiny limit removes every finished item but the one finished within the grace period, oldest first
    keeper = Keeper(state, Retention(keep_hours=0, max_state_mb=0.01), log=lambda line: None)
    assert [iid for _, iid, _ in keeper.sweep().removed] == [c, d]
    assert exists(state, "results", e)


@pytest.fixture(scope="module")
def silhouette(runs):
    return Pipeline.from_checkpoint(runs["stage2"], device="cpu", backend=SilhouetteBackend())


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return walking_clip(tmp_path_factory.mktemp("clips") / "walk.mp4", frames=3)


def _track(client, clip) -> str:
    return client.post("/api/animate/track", files={"video": ("c.mp4", clip.read_bytes(), "video/mp4")}).json()["id"]


def _render(client, tid, photo) -> str:
    return client.post("/api/animate/render", data={"track": tid},
                       files={"source": ("me.png", photo.read_bytes(), "image/png")}).json()["id"]  # fmt: skip


def _wait(client, rid, until, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        meta = client.get(f"/api/animate/{rid}").json()
        if meta["status"] in until:
            return meta
        time.sleep(0.02)
    raise AssertionError(f"{rid} did not reach {until}: {meta}")


@pytest.fixture
def held(monkeypatch):
    """(entered, release): a render's first queue turn waits in prepare_animation until released."""
    import posetransfer.inference.animation as animation

    entered, release = threading.Event(), threading.Event()
    real_prepare = animation.prepare_animation

    def held_prepare(*args, **kwargs):
        entered.set()
        release.wait(30)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(animation, "prepare_animation", held_prepare)
    yield entered, release
    release.set()


def test_a_running_render_and_its_track_are_kept(silhouette, clip, tmp_path, held, capsys):
    entered, release = held
    state = tmp_path / "state"
    photo = png(tmp_path / "me.png", (128, 96))
    with TestClient(create_app(silhouette, None, state, retention=Retention(keep_hours=1, job_gap_s=0))) as client:
        tid, other = _track(client, clip), _track(client, clip)
        rid = _render(client, tid, photo)
        try:
            assert entered.wait(30) and client.get(f"/api/animate/{rid}").json()["status"] == "running"
            for iid in (tid, other, rid):
                age(state / "animate" / iid / "meta.json", 5)
            report = client.app.state.studio.keeper.sweep()
            assert [iid for _, iid, _ in report.removed] == [other]  # the 5-hour-old render and its track stay
            assert exists(state, "animate", tid) and exists(state, "animate", rid)
        finally:
            release.set()
        meta = _wait(client, rid, ("done", "failed"))
        assert meta["status"] == "done", meta
        assert client.get(meta["url"]).status_code == 200
        # the job's own sweep at its end (it follows the "done"): the track is free now, and 5 hours old
        deadline = time.time() + 10
        while exists(state, "animate", tid) and time.time() < deadline:
            time.sleep(0.02)
        assert not exists(state, "animate", tid) and exists(state, "animate", rid)  # the render is new
    assert "1 older than 1 h" in capsys.readouterr().err


def test_a_job_that_raises_is_failed_with_its_message(silhouette, clip, tmp_path, monkeypatch):
    import posetransfer.inference.animation as animation

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU caught fire\n(second line)")

    monkeypatch.setattr(animation, "prepare_animation", broken)
    state = tmp_path / "state"
    photo = png(tmp_path / "me.png", (128, 96))
    with TestClient(create_app(silhouette, None, state)) as client:
        tid = _track(client, clip)
        rid = _render(client, tid, photo)
        meta = _wait(client, rid, ("done", "failed"))
    assert meta["status"] == "failed" and meta["error"] == "RuntimeError: the GPU caught fire (second line)"
    assert json.loads((state / "animate" / rid / "meta.json").read_text())["status"] == "failed"
    assert not list((state / "animate" / rid).glob("result*"))
    # the failed render freed its pins: the track can be swept like any finished item
    assert client.app.state.studio.keeper._pins == {}


def test_stopping_the_studio_ends_a_render_as_failed(silhouette, clip, tmp_path, held):
    entered, release = held
    state = tmp_path / "state"
    photo = png(tmp_path / "me.png", (128, 96))
    with TestClient(create_app(silhouette, None, state)) as client:
        tid = _track(client, clip)
        rid = _render(client, tid, photo)
        assert entered.wait(30)
        threading.Timer(0.3, release.set).start()  # the batch in the worker thread ends; the job is cancelled after it
    meta = json.loads((state / "animate" / rid / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["error"] == "interrupted: the studio was stopped", meta
    assert client.app.state.studio.keeper._pins == {}


def test_a_restart_marks_cut_jobs_failed(tmp_path, capsys):
    state = tmp_path / "state"
    tid = make_item(state, "animate", 1, hours=1, meta=TRACK, files={"driving": 10})
    running = make_item(state, "animate", 2, meta={**RENDER, "status": "running", "frames_done": 1, "track": tid})
    queued = make_item(state, "animate", 3, meta={**RENDER, "status": "queued", "frames_done": 0, "track": tid})
    done = make_item(state, "animate", 4, meta={**RENDER, "track": tid}, files={"result.mp4": 10})
    legacy = make_item(state, "animate", 5, meta={**RENDER, "status": "error", "error": "boom"})  # before "failed"
    before = {i: (state / "animate" / i / "meta.json").read_bytes() for i in (tid, done)}
    client = TestClient(create_app(None, None, state))
    for iid in (running, queued):
        meta = client.get(f"/api/animate/{iid}").json()
        assert meta["status"] == "failed" and meta["error"] == INTERRUPTED == "interrupted by a restart of the studio"
        on_disk = json.loads((state / "animate" / iid / "meta.json").read_text())
        assert on_disk["status"] == "failed" and on_disk["error"] == INTERRUPTED and on_disk["frames"] == 3
    meta = client.get(f"/api/animate/{legacy}").json()
    assert meta["status"] == "failed" and meta["error"] == "boom"
    assert {i: (state / "animate" / i / "meta.json").read_bytes() for i in (tid, done)} == before  # untouched
    assert "marked 2 job(s) cut by the restart as failed" in capsys.readouterr().err
    # a second restart finds nothing to mark
    TestClient(create_app(None, None, state))
    assert "marked" not in capsys.readouterr().err


def test_half_written_items_go_after_the_grace_period(tmp_path, capsys):
    state = tmp_path / "state"
    killed_upload = make_item(state, "animate", 1, hours=1, files={"driving": 1000})  # killed while tracking: no meta.json
    killed_result = make_item(state, "results", 2, hours=1, files={"source.png": 1000})
    writing = make_item(state, "results", 3, hours=0.05, files={"source.png": 1000})  # 3 min old: may still be written
    (state / "tmp").mkdir()
    (state / "tmp" / "old.img").write_bytes(b"x")
    age(state / "tmp" / "old.img", 1)
    (state / "tmp" / "new.img").write_bytes(b"x")
    not_ours = state / "results" / "my-notes"  # not a generated id: not the studio's, left alone
    not_ours.mkdir()
    age(not_ours, 1000)
    TestClient(create_app(None, None, state, retention=Retention(grace_s=15 * 60)))
    assert not exists(state, "animate", killed_upload) and not exists(state, "results", killed_result)
    assert exists(state, "results", writing) and not_ours.is_dir()
    assert sorted(p.name for p in (state / "tmp").iterdir()) == ["new.img"]
    assert "removed 2 item(s) (2 half-written, 1 tmp/ leftover(s))" in capsys.readouterr().err


def test_nothing_outside_the_state_folder_is_touched(tmp_path):
    """Nor the study inside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"o" * 50_000)
    ext_item = outside / "1700000000009-000009"  # looks like an item, but lies outside
    ext_item.mkdir()
    (ext_item / "meta.json").write_text(json.dumps({"id": ext_item.name, **TRACK}))
    age(ext_item / "meta.json", 1000)
    snapshot = lambda: sorted((p.relative_to(outside).as_posix(), p.read_bytes()) for p in outside.rglob("*") if p.is_file())  # noqa: E731
    before = snapshot()

    state = tmp_path / "state"
    (state / "animate").mkdir(parents=True)
    (state / "animate" / ext_item.name).symlink_to(ext_item, target_is_directory=True)  # a linked item
    age(state / "animate" / ext_item.name, 1000)
    real = make_item(state, "results", 1, hours=1000, meta={"pose": "custom"}, files={"result.png": 10})
    (state / "results" / real / "link.bin").symlink_to(outside / "big.bin")  # a link inside an old item
    (state / "tmp").mkdir()
    (state / "tmp" / "old-link").symlink_to(outside / "big.bin")
    age(state / "tmp" / "old-link", 1000)
    for name in ("study/images/r0.png", "study/answer_key.csv", "study.sqlite"):  # the study's data: never the sweep's
        (state / name).parent.mkdir(parents=True, exist_ok=True)
        (state / name).write_bytes(b"s" * 1000)
        age(state / name, 1000)
    young = make_item(state, "results", 2, meta={"pose": "custom"}, files={"result.png": 10})
    (state / "results" / young / "link.bin").symlink_to(outside / "big.bin")
    client = TestClient(create_app(None, None, state, retention=Retention(keep_hours=1, max_state_mb=0.001)))
    assert not exists(state, "results", real)  # removed: its link unlinked, not followed
    assert (state / "animate" / ext_item.name).is_symlink() and (state / "tmp" / "old-link").is_symlink()
    assert snapshot() == before
    assert all((state / n).read_bytes() == b"s" * 1000 for n in ("study/images/r0.png", "study/answer_key.csv", "study.sqlite"))
    # what lies behind links is not counted: the 50 kB never weigh on the size limit
    own = sum(p.stat().st_size for p in (state / "results" / young).iterdir() if not p.is_symlink())
    assert client.app.state.studio.keeper.sweep().kept_bytes == own == 10 + len((state / "results" / young / "meta.json").read_bytes())

    # a state folder whose area is itself a link pointing out: the sweep skips the area
    state2 = tmp_path / "state2"
    state2.mkdir()
    (state2 / "animate").symlink_to(outside, target_is_directory=True)
    TestClient(create_app(None, None, state2, retention=Retention(keep_hours=1, max_state_mb=0.001)))
    assert snapshot() == before and json.loads((ext_item / "meta.json").read_text())["status"] == "done"


def test_the_periodic_sweep(tmp_path):
    state = tmp_path / "state"
    with TestClient(create_app(None, None, state, retention=Retention(keep_hours=1, sweep_every_s=0.05))) as client:
        iid = make_item(state, "animate", 1, hours=2, meta=TRACK)  # after the start-up sweep
        keeper = client.app.state.studio.keeper
        deadline = time.time() + 30
        while exists(state, "animate", iid) and time.time() < deadline:
            time.sleep(0.02)
        assert not exists(state, "animate", iid) and keeper.sweeps >= 2, f"{keeper.sweeps} sweeps"


def test_serve_retention_options(runs, tmp_path, capsys):
    from posetransfer.cli import build_parser
    from posetransfer.commands.serve import build

    parse = build_parser().parse_args
    base = ["serve", "--checkpoint", str(runs["stage1"]), "--state", str(tmp_path / "s"), "--device", "cpu"]
    info = TestClient(build(parse(base))).get("/api/info").json()
    assert info["retention"] == {"keep_hours": 168.0, "max_state_mb": 2048.0, "grace_s": 900.0, "sweep_every_s": 600.0,
                                 "job_gap_s": 30.0}  # fmt: skip
    info = TestClient(build(parse([*base, "--keep-hours", "0.5", "--max-state-mb", "0"]))).get("/api/info").json()
    assert info["retention"]["keep_hours"] == 0.5 and info["retention"]["max_state_mb"] == 0.0
    for bad in (["--keep-hours", "-1"], ["--max-state-mb", "lots"], ["--keep-hours", "nan"]):
        with pytest.raises(SystemExit):
            parse([*base, *bad])
        err = capsys.readouterr().err
        assert "must be a number >= 0" in err or "invalid number" in err, err
    with pytest.raises(ValueError, match="keep_hours must be >= 0"):
        Retention(keep_hours=-1)


def test_each_guard_of_the_sweep_on_its_own(tmp_path):
    """The sweep's guards one at a time (the app always has several at once): a meta.json that says
    running, a pin taken after the scan (a render request that pins its track), a stale path."""
    state = tmp_path / "state"
    running = make_item(state, "animate", 1, hours=100, meta={**RENDER, "status": "running"})
    pinned = make_item(state, "animate", 2, hours=100, meta=TRACK)
    keeper = Keeper(state, Retention(keep_hours=1), log=lambda line: None)  # no recover(): as if the job ran
    items = {it.id: it for it in keeper.scan()}
    assert [iid for _, iid, _ in keeper.sweep().removed] == [pinned] and exists(state, "animate", running)
    pinned = make_item(state, "animate", 3, hours=100, meta=TRACK)
    item = next(it for it in keeper.scan() if it.id == pinned)
    with keeper.pinned("animate", pinned):
        assert keeper._remove(item) is False and exists(state, "animate", pinned)
    assert keeper._remove(item) is True and not exists(state, "animate", pinned)
    assert list((state / "tmp").iterdir()) == []  # the renamed item is deleted at once
    # an item whose folder became a link after the scan is not removed
    target = tmp_path / "elsewhere"
    (state / "animate" / running).rename(target)
    (state / "animate" / running).symlink_to(target, target_is_directory=True)
    assert keeper._remove(items[running]) is False and (target / "meta.json").is_file()


def test_a_failing_sweep_does_not_fail_the_job(pipe, tmp_path, monkeypatch, capsys):
    client = TestClient(create_app(pipe, None, tmp_path / "state", retention=Retention(job_gap_s=0)))
    keeper = client.app.state.studio.keeper

    def broken(now):
        raise PermissionError(13, "Permission denied", str(tmp_path / "state" / "results"))

    monkeypatch.setattr(keeper, "_sweep", broken)
    photo = png(tmp_path / "me.png")
    r = client.post("/api/transfer", files={"source": ("me.png", photo.read_bytes(), "image/png")}, data={"pose": "side"})
    assert r.status_code == 200 and len(client.get("/api/results").json()["results"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "state sweep failed: PermissionError: [Errno 13] Permission denied:" in err, err
    assert keeper.sweep() is None and not keeper._sweeping.locked()
