"""The studio's JSON API in-process (``posetransfer serve``): uploads, every pose source, retargeting,
each error status, the serving limits, the study from first answer to results, and a restart."""

from __future__ import annotations

import csv
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from _studio import SIZE, LibraryBackend, png, tiny_multiview_run, tiny_runs  # noqa: E402
from posetransfer.errors import DataError, PosetransferError  # noqa: E402
from posetransfer.evaluation.study import read_answer_key, score_study  # noqa: E402
from posetransfer.inference import Pipeline, read_pose_file  # noqa: E402
from posetransfer.pose.library import POSES, library_pose  # noqa: E402
from posetransfer.pose.retarget import retarget_pose  # noqa: E402
from posetransfer.studio.app import Limits, create_app, parse_pose  # noqa: E402
from posetransfer.studio.study import Study, wilson_interval  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tiny_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def pipe(runs):
    return Pipeline.from_checkpoint(runs["stage2"], device="cpu", backend=LibraryBackend())


@pytest.fixture
def photo(tmp_path):
    return png(tmp_path / "me.png")


def client_for(pipe, state, **kwargs) -> TestClient:
    return TestClient(create_app(pipe, kwargs.pop("study", None), state, **kwargs))


@pytest.fixture
def client(pipe, tmp_path):
    return client_for(pipe, tmp_path / "state")


def decode_png(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB"))


def test_health_info_and_library(client):
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["model"]["task"] == "pg2_stage2" and h["model"]["image_size"] == list(SIZE)
    info = client.get("/api/info").json()
    assert len(info["keypoints"]) == 18 and len(info["flip"]) == 18 and len(info["limbs"]) == 17
    lib = client.get("/api/poses").json()
    assert [p["name"] for p in lib["poses"]] == list(POSES)
    walking = next(p for p in lib["poses"] if p["name"] == "walking")["keypoints"]
    np.testing.assert_allclose(np.array(walking), library_pose("walking", SIZE), atol=0.01)
    page = client.get("/")
    assert page.status_code == 200 and "/static/studio.js" in page.text
    assert "function drawEditor" in client.get("/static/studio.js").text


def test_pose_of_an_upload(client, pipe, photo, tmp_path):
    r = client.post("/api/pose", files={"image": ("me.png", photo.read_bytes(), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    expected, _ = pipe.target_keypoints(photo)  # the same backend and framing, through a file
    np.testing.assert_allclose(np.array(body["keypoints"]), expected, atol=0.01)
    framed = decode_png(__import__("base64").b64decode(body["framed"].split(",", 1)[1]))
    assert framed.shape == (*SIZE, 3)
    # no person: 422 from /api/pose, the framed image and the problem from /api/frame
    nobody = png(tmp_path / "nobody.png", black_corner=True).read_bytes()
    r = client.post("/api/pose", files={"image": ("x.png", nobody, "image/png")})
    assert r.status_code == 422 and "no person found" in r.json()["error"]
    r = client.post("/api/frame", files={"image": ("x.png", nobody, "image/png")})
    assert r.status_code == 200 and r.json()["keypoints"] is None and "no person" in r.json()["problem"]


def test_transfer_with_each_pose_source(client, pipe, photo, tmp_path):
    files = {"source": ("me.png", photo.read_bytes(), "image/png")}
    r = client.post("/api/transfer", files=files, data={"pose": "walking"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-stages"] == "stage1,stage2"
    image = decode_png(r.content)
    np.testing.assert_array_equal(image, pipe(photo, "walking"))
    # a JSON pose (one joint moved, one missing) gives what the pipeline gives for that array
    kp = library_pose("arms_up", SIZE)
    kp[4] = (10.0, 3.0)
    kp[17] = -1
    r = client.post("/api/transfer", files=files, data={"pose": json.dumps(kp.tolist())})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(decode_png(r.content), pipe(photo, kp))
    # a pose taken from another photo through /api/pose, then sent back as JSON
    other = client.post("/api/pose", files={"image": ("o.png", png(tmp_path / "o.png", (120, 50), 1).read_bytes())}).json()
    r = client.post("/api/transfer", files=files, data={"pose": json.dumps(other["keypoints"])})
    assert r.status_code == 200
    # the gallery lists the three results, newest first, with both stages and a pose row
    results = client.get("/api/results").json()["results"]
    assert len(results) == 3 and results[0]["pose"] == "custom" and results[2]["pose"] == "library:walking"
    rid = results[2]["id"]
    for name in ("result.png", "stage1.png", "stage2.png", "source.png"):
        assert client.get(f"/api/results/{rid}/{name}").status_code == 200
    np.testing.assert_array_equal(decode_png(client.get(f"/api/results/{rid}/result.png").content), image)
    pose_csv = client.get(f"/api/results/{rid}/pose.csv")
    assert "attachment" in pose_csv.headers["content-disposition"]
    (tmp_path / "pose.csv").write_bytes(pose_csv.content)
    walking = library_pose("walking", SIZE)
    np.testing.assert_array_equal(read_pose_file(tmp_path / "pose.csv"), np.where(walking >= 0, np.round(walking), -1))


@pytest.mark.slow  # trains the tiny multi-view config for two steps
def test_multiview_model_takes_several_sources(tmp_path_factory, tmp_path):
    pipe = Pipeline.from_checkpoint(tiny_multiview_run(tmp_path_factory), device="cpu", backend=LibraryBackend())
    c = client_for(pipe, tmp_path / "state")
    assert c.get("/healthz").json()["model"]["max_sources"] == pipe.max_sources > 1
    photos = [png(tmp_path / f"v{i}.png", seed=i) for i in range(pipe.max_sources + 1)]
    files = [("source", (p.name, p.read_bytes(), "image/png")) for p in photos]
    r = c.post("/api/transfer", files=files[:2], data={"pose": "side"})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(decode_png(r.content), pipe(photos[:2], "side"))
    assert r.headers["x-stages"] == ""  # one output, no stages
    r = c.post("/api/transfer", files=files, data={"pose": "side"})
    assert r.status_code == 400 and f"at most {pipe.max_sources} source photo(s)" in r.json()["error"]


def test_pose_of_a_real_photo_with_mediapipe(pipe, mini_fashion, tmp_path):
    pytest.importorskip("mediapipe")
    real = Pipeline(pipe.task, pipe.nets, pipe.image_size, backend="mediapipe")
    c = client_for(real, tmp_path / "state")
    photo = sorted((mini_fashion / "images").iterdir())[0]
    r = c.post("/api/pose", files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert r.status_code == 200, r.text
    kp = np.array(r.json()["keypoints"])
    vis = (kp >= 0).all(axis=1)
    assert vis.sum() >= 10 and (kp[vis, 0] <= SIZE[0] - 1).all() and (kp[vis, 1] <= SIZE[1] - 1).all()
    r = c.post("/api/transfer", files={"source": (photo.name, photo.read_bytes())}, data={"pose": "walking", "retarget": "1"})
    assert r.status_code == 200 and decode_png(r.content).shape == (*SIZE, 3)


def test_retarget(client, pipe, photo):
    source = library_pose("standing_front", SIZE) * 0.8 + 3  # a smaller person, shifted
    target = library_pose("arms_up", SIZE)
    r = client.post("/api/retarget", json={"target": target.tolist(), "source": source.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array(r.json()["keypoints"]), retarget_pose(target, source, SIZE), atol=0.01)
    # retarget=1 without source_pose: the source's pose is extracted from the source photo
    src_kp, _ = pipe.target_keypoints(photo)
    expected = pipe(photo, retarget_pose(library_pose("walking", SIZE), src_kp, SIZE))
    r = client.post("/api/transfer", files={"source": ("me.png", photo.read_bytes())}, data={"pose": "walking", "retarget": "1"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(decode_png(r.content), expected, atol=1)  # JSON rounding of the keypoints: at most 1 level
    assert client.get("/api/results").json()["results"][0]["retarget"] is True
    # with an explicit source pose
    r = client.post("/api/transfer", files={"source": ("me.png", photo.read_bytes())},
                    data={"pose": "walking", "retarget": "true", "source_pose": json.dumps(source.tolist())})  # fmt: skip
    np.testing.assert_array_equal(decode_png(r.content), pipe(photo, retarget_pose(library_pose("walking", SIZE), source, SIZE)))


def test_parse_pose():
    kp = parse_pose(json.dumps([[1, 2]] + [[-1, -1]] * 17), SIZE)
    assert kp[0].tolist() == [1, 2] and (kp[1:] == -1).all()
    np.testing.assert_array_equal(parse_pose("side", SIZE), library_pose("side", SIZE))
    for text, message in [("", "missing"), ("moonwalk", "neither a library pose"), ("[[1, 2]]", "18 \\[y, x\\] pairs"),
                          (json.dumps([[1, "a"]] * 18), "joint 0 \\(nose\\) must be a pair"),
                          (json.dumps([[70, 1]] + [[-1, -1]] * 17), "joint 0 \\(nose\\) at \\[70, 1\\] lies outside the model's 64x32"),
                          (json.dumps([[-1, -1]] * 18), "no visible joint")]:  # fmt: skip
        with pytest.raises(Exception, match=message):
            parse_pose(text, SIZE)


def test_error_statuses(pipe, photo, tmp_path):
    c = client_for(pipe, tmp_path / "state", limits=Limits(max_body_bytes=200_000, max_pixels=100 * 100, max_queue=2))
    src = {"source": ("me.png", photo.read_bytes(), "image/png")}

    def err(r, status, text):
        assert r.status_code == status, r.text
        assert text in r.json()["error"]

    err(c.post("/api/transfer", data={"pose": "walking"}), 400, "at least one 'source' file")
    err(c.post("/api/transfer", files=src), 400, "pose: missing")
    err(c.post("/api/transfer", files=src, data={"pose": "moonwalk"}), 400, "neither a library pose")
    err(c.post("/api/transfer", files=src, data={"pose": json.dumps([[1, 1]] * 17)}), 400, "18 [y, x] pairs")
    err(c.post("/api/transfer", files=[("source", ("a.png", photo.read_bytes())), ("source", ("b.png", photo.read_bytes()))],
               data={"pose": "walking"}), 400, "at most 1 source photo")  # fmt: skip
    err(c.post("/api/transfer", files={"source": ("t.png", b"not an image")}, data={"pose": "walking"}), 400, "source 1: not an image")
    err(c.post("/api/transfer", files={"source": ("t.png", b"")}, data={"pose": "walking"}), 400, "source 1: the file is empty")
    big = png(tmp_path / "big.png", (120, 100))  # 12000 pixels > 10000
    err(c.post("/api/transfer", files={"source": ("b.png", big.read_bytes())}, data={"pose": "walking"}), 400,
        "120 = 12000 pixels, more than the limit of 10000")  # fmt: skip
    huge = b"0" * 300_000
    err(c.post("/api/pose", files={"image": ("h.png", huge)}), 413, "larger than the limit of 200000 bytes")
    # without a Content-Length (chunked), the limit holds while the body is read
    err(c.post("/api/pose", content=iter([huge[:150_000], huge[150_000:]]),
               headers={"content-type": "multipart/form-data; boundary=x"}), 413, "larger than the limit")  # fmt: skip
    err(c.post("/api/pose", data={"image": "text"}), 400, "needs a file field 'image'")
    err(c.post("/api/retarget", content=b"{", headers={"content-type": "application/json"}), 400, "must be JSON")
    err(c.get("/api/results/..%2F..%2Fetc/passwd"), 404, "")
    err(c.get("/api/results/0000000000000-abcdef/secret.txt"), 404, "no result file")
    err(c.get("/api/nothing"), 404, "not found")
    err(c.get("/api/study/results"), 404, "runs no study")
    # a full queue answers 503
    queue = c.app.state.studio.queue
    queue.pending = queue.max_pending
    try:
        err(c.post("/api/transfer", files=src, data={"pose": "walking"}), 503, "busy")
    finally:
        queue.pending = 0
    assert c.post("/api/transfer", files=src, data={"pose": "walking"}).status_code == 200


def test_the_queue_bound_with_jobs_running():
    import anyio

    from posetransfer.studio.app import ApiError, InferenceQueue

    queue, release, order = InferenceQueue(2), threading.Event(), []

    def job(k):
        order.append(("start", k))
        release.wait(10)
        return k

    async def main():
        results, refused = [], []

        async def submit(k):
            try:
                results.append(await queue.run(job, k))
            except ApiError as err:
                refused.append((k, err.status))

        async with anyio.create_task_group() as tg:
            tg.start_soon(submit, 0)
            tg.start_soon(submit, 1)
            await anyio.sleep(0.2)
            assert queue.pending == 2 and order == [("start", 0)]  # one runs, one waits: one model, one worker
            await submit(2)  # the queue is full
            release.set()
        return sorted(results), refused

    results, refused = anyio.run(main)
    assert results == [0, 1] and refused == [(2, 503)] and queue.pending == 0 and queue.done == 2


def test_uploaded_names_are_never_paths(client, photo, tmp_path):
    before = {p for p in tmp_path.rglob("*") if "state" not in p.parts}
    r = client.post("/api/transfer", files={"source": ("../../evil.png", photo.read_bytes())}, data={"pose": "side"})
    assert r.status_code == 200
    assert {p for p in tmp_path.rglob("*") if "state" not in p.parts} == before
    assert not any("evil" in p.name for p in tmp_path.rglob("*"))
    assert list((tmp_path / "state" / "tmp").iterdir()) == []  # the decoding temp file is gone


def test_token(pipe, tmp_path):
    c = client_for(pipe, tmp_path / "state", token="s3cret")
    assert c.get("/healthz").status_code == 200
    assert c.get("/api/poses").status_code == 401
    assert c.get("/api/poses", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert c.get("/api/poses", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    page = c.get("/?token=s3cret")
    assert page.status_code == 200 and "posetransfer_token=s3cret" in page.headers["set-cookie"]
    assert c.get("/api/poses").status_code == 200  # the cookie the page set
    c.cookies.clear()
    c.cookies.set("posetransfer_token", "stale")
    assert c.get("/api/poses").status_code == 401
    assert c.get("/?token=s3cret").status_code == 200 and c.get("/api/poses").status_code == 200


def test_serve_arguments(tmp_path, runs):
    from posetransfer.cli import build_parser
    from posetransfer.commands.serve import build, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and not is_loopback("0.0.0.0")
    parse = build_parser().parse_args
    with pytest.raises(PosetransferError, match="--host 0.0.0.0 listens beyond this machine: give --token"):
        build(parse(["serve", "--checkpoint", str(runs["stage1"]), "--host", "0.0.0.0", "--state", str(tmp_path / "s")]))
    with pytest.raises(PosetransferError, match="give --checkpoint"):
        build(parse(["serve"]))
    with pytest.raises(PosetransferError, match="go together"):
        build(parse(["serve", "--study", str(tmp_path)]))
    app = build(parse(["serve", "--checkpoint", str(runs["stage1"]), "--state", str(tmp_path / "s"), "--device", "cpu"]))
    assert TestClient(app).get("/healthz").json()["model"]["task"] == "pg2_stage1"


# -- the study -----------------------------------------------------------------------------------


@pytest.fixture
def study_folders(tmp_path):
    gen, real = tmp_path / "generated", tmp_path / "real" / "images"
    gen.mkdir()
    real.mkdir(parents=True)
    for i in range(12):
        png(gen / f"g{i:02d}.png", (16, 8), seed=i)
        png(real / f"r{i:02d}.png", (16, 8), seed=100 + i)
    return gen, tmp_path / "real"


def test_study_flow_and_restart(study_folders, tmp_path):
    gen, real = study_folders
    state = tmp_path / "state"
    study = Study.open(state, gen, real, per_kind=10, seed=1)
    c = TestClient(create_app(None, study, state))
    assert c.get("/", follow_redirects=False).headers["location"] == "/study"
    assert "study.js" in c.get("/study").text and "rates" in c.get("/study/results").text
    key = read_answer_key(state / "study" / "answer_key.csv")
    assert sorted(key.values()).count("real") == 10 and len(key) == 20

    p = c.post("/api/study/participants").json()
    assert p["practice"] == 10 and p["show_ms"] == 1000 and sorted(p["sequence"]) == sorted(key)
    pid, seq = p["participant"], p["sequence"]
    assert c.get(f"/api/study/images/{seq[0]}").status_code == 200
    # this participant says "real" to everything: scored real answers are right, scored generated wrong
    for i, image in enumerate(seq[:15]):
        r = c.post("/api/study/answers", json={"participant": pid, "image": image, "answer": "real", "ms": 900})
        assert r.status_code == 200 and r.json()["answered"] == i + 1 and r.json()["practice"] == (i < 10)
    assert c.post("/api/study/answers", json={"participant": pid, "image": seq[0], "answer": "real"}).status_code == 409
    assert c.post("/api/study/answers", json={"participant": "nobody", "image": seq[0], "answer": "real"}).status_code == 404
    assert c.post("/api/study/answers", json={"participant": pid, "image": seq[15], "answer": "maybe"}).status_code == 400
    assert c.post("/api/study/answers", json={"participant": pid, "image": "../x", "answer": "real"}).status_code == 400
    assert c.get("/api/study/images/..%2Fanswer_key.csv").status_code == 404
    assert c.get(f"/api/study/participants/{pid}").json()["answered"] == 15

    # a restart: a new Study and app on the same state folder keep the answers and the image set
    study2 = Study.open(state, gen, real, per_kind=10, seed=1)
    c2 = TestClient(create_app(None, study2, state))
    assert c2.get(f"/api/study/participants/{pid}").json()["answered"] == 15
    for image in seq[15:]:
        assert c2.post("/api/study/answers", json={"participant": pid, "image": image, "answer": "real"}).status_code == 200
    # a second participant answers "generated" to everything
    q = c2.post("/api/study/participants").json()
    for image in q["sequence"]:
        c2.post("/api/study/answers", json={"participant": q["participant"], "image": image, "answer": "generated"})

    res = c2.get("/api/study/results").json()
    scored = [[key[im] for im in s[10:]] for s in (seq, q["sequence"])]
    real_p1, gen_p1 = scored[0].count("real"), scored[0].count("generated")
    real_p2, gen_p2 = scored[1].count("real"), scored[1].count("generated")
    # R2G: real rated generated = all of participant 2's scored real; G2R: all of participant 1's scored generated
    assert res["r2g"]["count"] == real_p2 and res["r2g"]["n"] == real_p1 + real_p2
    assert res["g2r"]["count"] == gen_p1 and res["g2r"]["n"] == gen_p1 + gen_p2
    assert res["r2g"]["rate"] == pytest.approx(real_p2 / (real_p1 + real_p2))
    lo, hi = res["r2g"]["ci95"]
    assert lo < res["r2g"]["rate"] < hi
    per = {x["participant"]: x for x in res["participants"]}
    assert per[pid] == {"participant": pid, "answered": 20, "practice": 10, "real": real_p1, "real_rated_generated": 0,
                        "generated": gen_p1, "generated_rated_real": gen_p1}  # fmt: skip
    # the CSV export is what `study score` reads, and scores the same
    text = c2.get("/api/study/results.csv").text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 40 and rows[0]["rater"] == pid and rows[0]["position"] == "0" and rows[0]["practice"] == "1"
    (tmp_path / "answers.csv").write_text(text)
    scored_file = score_study(state / "study" / "answer_key.csv", tmp_path / "answers.csv", practice=10)
    assert scored_file["r2g"] == pytest.approx(res["r2g"]["rate"]) and scored_file["g2r"] == pytest.approx(res["g2r"]["rate"])
    assert scored_file["raters"] == 2

    # the state folder's study cannot silently become another one
    with pytest.raises(DataError, match="holds a study made from"):
        Study.open(state, gen, real, per_kind=5, seed=1)


def test_study_concurrent_participants(study_folders, tmp_path):
    gen, real = study_folders
    study = Study.open(tmp_path / "state", gen, real, per_kind=12)
    people = [study.new_participant() for _ in range(4)]
    errors = []

    def run(p):
        try:
            for image in p["sequence"]:
                study.answer(p["participant"], image, "real")
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(p,)) for p in people]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    res = study.results()
    assert [x["answered"] for x in res["participants"]] == [24] * 4
    assert res["r2g"]["count"] == 0 and res["g2r"]["count"] == res["g2r"]["n"]
    assert res["r2g"]["n"] + res["g2r"]["n"] == 4 * (24 - 10)


def test_wilson_interval():
    # Wilson 95% for 8/10, by hand: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.95996
    z, n, p = 1.959964, 10, 0.8
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx((centre - half) / (1 + z * z / n), abs=1e-5)
    assert hi == pytest.approx((centre + half) / (1 + z * z / n), abs=1e-5)
    assert wilson_interval(0, 0) is None
