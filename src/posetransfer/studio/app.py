"""The pose studio: a local web app around :class:`posetransfer.inference.Pipeline`, and the
user-study page of PG2 (:mod:`posetransfer.studio.study`).

Why FastAPI/Starlette + uvicorn and plain HTML/JS (no Gradio): the joint editor needs pointer
events on a canvas and the study page a timer that hides an image after exactly one second; both
are a few lines of plain JavaScript, whereas Gradio would need custom components with a front-end
build step. Starlette gives the multipart parsing, the routing and the thread pool; the pages are
static files shipped in the package (no CDN, works offline).

Serving rules (issue 12): one model in memory; inference and pose extraction run one at a time
in a worker thread, with at most ``max_queue`` requests waiting or running (one more is answered
503); request bodies are limited in bytes (413) and images in pixels (400); uploaded file names
are never used as paths (results get generated ids); everything the server writes lies under
its state folder, which :mod:`posetransfer.studio.keep` keeps tidy (old items removed, jobs cut
by a restart marked failed); with a token, every request but ``/healthz`` must carry it (header
``Authorization: Bearer``, cookie, or ``?token=`` on a page, which sets the cookie).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import io
import json
import math
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.formparsers import MultiPartException, MultiPartParser

from posetransfer.errors import DataError, PosetransferError
from posetransfer.pose.io import ANNOTATION_HEADER, format_annotation_line
from posetransfer.pose.library import POSES, library_pose
from posetransfer.pose.retarget import retarget_pose
from posetransfer.pose.schema import FLIP_PERMUTATION, KEYPOINT_NAMES, LIMB_COLORS, NUM_KEYPOINTS, STICK_LIMBS, visible
from posetransfer.studio.keep import Keeper, Retention
from posetransfer.studio.study import Study, StudyError
from posetransfer.utils.io import atomic_write_json, atomic_write_text, read_image, save_image

STATIC = Path(__file__).with_name("static")
TOKEN_COOKIE = "posetransfer_token"
_RESULT_ID = re.compile(r"^[0-9]{13}-[0-9a-f]{6}$")
_RESULT_FILES = {"result.png", "stage1.png", "stage2.png", "pose.csv", "meta.json", "source.png"}
_TRUE = {"1", "true", "yes", "on"}


@dataclasses.dataclass
class Limits:
    """What one request may carry: body bytes (413 beyond), pixels per image (400 beyond), queue."""

    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 25_000_000
    max_queue: int = 8
    max_video_frames: int = 300  # the animation tab's clips (studio/animate.py)
    max_video_pixels: int = 3840 * 2160  # per frame: a 4K clip is taken (and downscaled), beyond it refused


class ApiError(Exception):
    """An error answered as JSON ``{"error": message}`` with a 4xx/5xx status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _BodyTooLarge(Exception):
    pass


class InferenceQueue:
    """One model, one worker: jobs run one at a time in a thread; beyond ``max_pending`` 503."""

    def __init__(self, max_pending: int):
        self.max_pending = int(max_pending)
        self.pending = 0
        self.done = 0
        self._lock = threading.Lock()
        self._limiter = None

    async def run(self, fn: Callable, *args) -> Any:
        import anyio

        with self._lock:
            if self.pending >= self.max_pending:
                raise ApiError(503, f"the server is busy ({self.pending} requests queued); try again shortly")
            self.pending += 1
        try:
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(1)
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        finally:
            with self._lock:
                self.pending -= 1
                self.done += 1


# -- pure helpers (tested directly) ------------------------------------------------------------


def parse_pose(text: str, size: tuple[int, int], field: str = "pose") -> np.ndarray:
    """A pose from the API: a library name, or JSON ``[[y, x] * 18]`` with ``[-1, -1]`` for missing.

    Visible joints must lie inside the model's ``size`` = (H, W) frame; anything else is an
    :class:`ApiError` (400) naming the field and the joint.
    """
    text = (text or "").strip()
    if not text:
        raise ApiError(400, f"{field}: missing (a library pose name or a JSON list of 18 [y, x] pairs)")
    if text in POSES:
        return library_pose(text, size)
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise ApiError(400, f"{field}: {text[:40]!r} is neither a library pose ({', '.join(POSES)}) nor JSON") from None
    if not isinstance(value, list) or len(value) != NUM_KEYPOINTS:
        raise ApiError(400, f"{field}: expected a list of {NUM_KEYPOINTS} [y, x] pairs")
    kp = np.full((NUM_KEYPOINTS, 2), -1.0, dtype=np.float32)
    h, w = size
    for i, pair in enumerate(value):
        ok = (isinstance(pair, list) and len(pair) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in pair))  # fmt: skip
        if not ok:
            raise ApiError(400, f"{field}: joint {i} ({KEYPOINT_NAMES[i]}) must be a pair of numbers [y, x], got {pair!r}")
        y, x = float(pair[0]), float(pair[1])
        if y < 0 or x < 0:
            continue  # missing
        if y > h - 1 or x > w - 1:
            raise ApiError(400, f"{field}: joint {i} ({KEYPOINT_NAMES[i]}) at [{y:g}, {x:g}] lies outside the model's {h}x{w} frame")
        kp[i] = (y, x)
    if not visible(kp).any():
        raise ApiError(400, f"{field}: the pose has no visible joint")
    return kp


def pose_json(kp: np.ndarray | None) -> list[list[float]] | None:
    if kp is None:
        return None
    kp = np.asarray(kp, dtype=np.float64)
    return [[round(float(y), 2), round(float(x), 2)] if v else [-1, -1] for (y, x), v in zip(kp, visible(kp))]


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


# -- the application ----------------------------------------------------------------------------


class Studio:
    """State shared by the routes: the pipeline, the study, the state folder, the queue."""

    def __init__(self, pipeline, study: Study | None, state_dir: Path, limits: Limits, token: str | None,
                 retention: Retention | None = None):  # fmt: skip
        self.pipeline = pipeline
        self.study = study
        self.state = Path(state_dir)
        self.results_dir = self.state / "results"
        self.tmp_dir = self.state / "tmp"
        for d in (self.results_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.limits = limits
        self.token = token
        self.queue = InferenceQueue(limits.max_queue)
        self.keeper = Keeper(self.state, retention)  # the retention sweep and the restart recovery
        self.animate = None  # the AnimateStore of the Animate tab's routes

    # images --------------------------------------------------------------------------------

    def decode(self, data: bytes, what: str) -> np.ndarray:
        """An uploaded image as HxWx3 uint8 (EXIF-rotated), checked against the pixel limit.

        The bytes go through a temporary file of the state folder so that :func:`read_image`
        (the package's one image reader) handles every format; its name is generated, never the
        uploaded one, and it is removed at once.
        """
        if not data:
            raise ApiError(400, f"{what}: the file is empty")
        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size  # header only: nothing decoded yet
        except Image.DecompressionBombError:
            raise ApiError(400, f"{what}: far more pixels than the limit of {self.limits.max_pixels}") from None
        except Exception:
            raise ApiError(400, f"{what}: not an image (unrecognised format)") from None
        if w * h > self.limits.max_pixels:
            raise ApiError(400, f"{what}: {w}x{h} = {w * h} pixels, more than the limit of {self.limits.max_pixels}")
        with tempfile.NamedTemporaryFile(dir=self.tmp_dir, suffix=".img", delete=True) as tmp:
            tmp.write(data)
            tmp.flush()
            try:
                return read_image(tmp.name)
            except DataError as err:
                raise ApiError(400, f"{what}: {err.problem}") from None

    def extract(self, image: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray | None, str | None, list[str]]:
        """(framed image, keypoints in the frame or None, the problem or None, notes)."""
        from posetransfer.data.prepare import apply_frame, frame_window
        from posetransfer.pose.extract import NoPersonError, extract_pose

        pipe = self.pipeline
        try:
            result = extract_pose(image, pipe.backend, source=what)
        except NoPersonError as err:
            win = frame_window(image.shape[:2], pipe.image_size, "height" if pipe.frame == "person" else pipe.frame)
            return apply_frame(image, win, pipe.fill), None, err.problem, []
        except PosetransferError as err:  # e.g. the pose extra is not installed
            raise ApiError(500, f"{what}: pose extraction is not available ({err})") from None
        win = frame_window(image.shape[:2], pipe.image_size, pipe.frame, bbox=result.detection.bbox)
        kp = win.keypoints_to_frame(result.keypoints)
        framed = apply_frame(image, win, pipe.fill)
        if not visible(kp).any():
            return framed, None, f"the person's keypoints all fall outside the {pipe.frame!r} frame", result.notes
        return framed, kp, None, result.notes

    # results ---------------------------------------------------------------------------------

    def save_result(self, result, pose_source: str, retargeted: bool) -> dict:
        rid = f"{int(time.time() * 1000):013d}-{secrets.token_hex(3)}"
        with self.keeper.pinned("results", rid):  # the sweep leaves it alone while it is written
            return self._save_result(rid, result, pose_source, retargeted)

    def _save_result(self, rid: str, result, pose_source: str, retargeted: bool) -> dict:
        folder = self.results_dir / rid
        save_image(folder / "source.png", result.sources[0])
        save_image(folder / "result.png", result.image)
        stages = []
        for name in ("stage1", "stage2"):
            if name in result.stages:
                save_image(folder / f"{name}.png", result.stages[name])
                stages.append(name)
        atomic_write_text(folder / "pose.csv",
                          ANNOTATION_HEADER + "\n" + format_annotation_line(f"{rid}.png", result.target_keypoints) + "\n")  # fmt: skip
        meta = {"id": rid, "created": time.time(), "pose": pose_source, "retarget": retargeted, "stages": stages,
                "sources": len(result.sources), "image_size": list(self.pipeline.image_size), "notes": result.notes,
                "keypoints": pose_json(result.target_keypoints)}  # fmt: skip
        atomic_write_json(folder / "meta.json", meta)
        return meta

    def results(self, limit: int = 200) -> list[dict]:
        out = []
        for folder in sorted(self.results_dir.iterdir(), reverse=True):
            meta = folder / "meta.json"
            if _RESULT_ID.match(folder.name) and meta.is_file():
                try:
                    out.append(json.loads(meta.read_text(encoding="utf-8")))
                except (OSError, ValueError):  # removed by the sweep meanwhile, or not ours
                    continue
            if len(out) >= limit:
                break
        return out

    def model_info(self) -> dict | None:
        pipe = self.pipeline
        if pipe is None:
            return None
        task = pipe.task
        return {"task": task.name, "image_size": list(pipe.image_size), "max_sources": pipe.max_sources,
                "final_output": task.final_output, "frame": pipe.frame}  # fmt: skip


def create_app(
    pipeline=None,
    study: Study | None = None,
    state_dir: str | Path = "studio-state",
    limits: Limits | None = None,
    token: str | None = None,
    retention: Retention | None = None,
):
    """The ASGI app: the studio (when ``pipeline`` is given) and the study (when ``study`` is).

    Before it returns, the jobs a restart cut are marked failed and the state folder is swept
    (``retention``, :mod:`posetransfer.studio.keep`); while it runs, a sweep follows a job (at
    most one every ``retention.job_gap_s``) and its lifespan sweeps every ``retention.sweep_every_s``.
    """
    limits = limits or Limits()
    retention = retention or Retention()
    studio = Studio(pipeline, study, Path(state_dir), limits, token, retention)
    # Starlette spools uploaded parts larger than ``spool_max_size`` to the system's temporary
    # folder; with the spool as large as the whole body limit, uploads stay in memory and nothing
    # is written outside the state folder.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, limits.max_body_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        sweeper = asyncio.get_running_loop().create_task(studio.keeper.run_periodically())
        try:
            yield
        finally:
            sweeper.cancel()
            # renders still going end as "failed" (interrupted) once their current batch is done,
            # rather than stay "running" until the next start-up's recovery says so
            jobs = list(studio.animate.tasks) if studio.animate is not None else []
            for task in jobs:
                task.cancel()
            await asyncio.gather(sweeper, *jobs, return_exceptions=True)

    app = FastAPI(title="posetransfer studio", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.studio = studio

    @app.exception_handler(ApiError)
    async def _api_error(request, err: ApiError):
        return JSONResponse({"error": err.message}, status_code=err.status)

    @app.exception_handler(StudyError)
    async def _study_error(request, err: StudyError):
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(PosetransferError)
    async def _pt_error(request, err: PosetransferError):
        return JSONResponse({"error": str(err)}, status_code=400)

    @app.exception_handler(_BodyTooLarge)
    async def _too_large(request, err):
        return JSONResponse({"error": f"the request is larger than the limit of {limits.max_body_bytes} bytes"}, status_code=413)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, err: RequestValidationError):
        return JSONResponse({"error": "; ".join(str(e.get("msg")) for e in err.errors())}, status_code=400)

    @app.exception_handler(404)
    async def _not_found(request, err):
        return JSONResponse({"error": f"not found: {request.url.path}"}, status_code=404)

    @app.exception_handler(405)
    async def _not_allowed(request, err):
        return JSONResponse({"error": f"method {request.method} not allowed on {request.url.path}"}, status_code=405)

    def need_model():
        if studio.pipeline is None:
            raise ApiError(404, "this server runs no model (start it with --checkpoint)")
        return studio.pipeline

    def need_study() -> Study:
        if studio.study is None:
            raise ApiError(404, "this server runs no study (start it with --study GENERATED_DIR --data DATA_DIR)")
        return studio.study

    async def form(request: Request, max_files: int):
        try:
            return await request.form(max_files=max_files, max_fields=16, max_part_size=256 * 1024)
        except MultiPartException as err:
            raise ApiError(400, f"bad form: {err.message}") from None

    async def upload(form_data, name: str, what: str) -> np.ndarray:
        item = form_data.get(name)
        if item is None or isinstance(item, str):
            raise ApiError(400, f"the form needs a file field {name!r}")
        return await _threaded(studio.decode, await item.read(), what)

    # pages ---------------------------------------------------------------------------------

    def page(name: str):
        return HTMLResponse((STATIC / name).read_text(encoding="utf-8"))

    @app.get("/", include_in_schema=False)
    async def index():
        if studio.pipeline is None and studio.study is not None:
            return RedirectResponse("/study")
        return page("index.html")

    @app.get("/study", include_in_schema=False)
    async def study_page():
        need_study()
        return page("study.html")

    @app.get("/study/results", include_in_schema=False)
    async def study_results_page():
        need_study()
        return page("results.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # API -----------------------------------------------------------------------------------

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "model": studio.model_info(), "study": studio.study is not None,
                "queue": {"pending": studio.queue.pending, "max": studio.queue.max_pending, "done": studio.queue.done}}  # fmt: skip

    @app.get("/api/info")
    async def info():
        return {"model": studio.model_info(), "study": studio.study is not None,
                "keypoints": list(KEYPOINT_NAMES), "limbs": [list(l) for l in STICK_LIMBS],
                "limb_colors": [list(c) for c in LIMB_COLORS], "flip": list(FLIP_PERMUTATION),
                "limits": dataclasses.asdict(limits), "retention": dataclasses.asdict(retention)}  # fmt: skip

    @app.get("/api/poses")
    async def poses():
        pipe = need_model()
        return {"image_size": list(pipe.image_size),
                "poses": [{"name": n, "keypoints": pose_json(library_pose(n, pipe.image_size))} for n in POSES]}  # fmt: skip

    async def _pose_of_upload(request: Request) -> dict:
        pipe = need_model()
        image = await upload(await form(request, 1), "image", "image")
        framed, kp, problem, notes = await studio.queue.run(studio.extract, image, "image")
        return {"keypoints": pose_json(kp), "problem": problem, "notes": notes,
                "image_size": list(pipe.image_size), "framed": data_url(framed)}  # fmt: skip

    @app.post("/api/pose")
    async def pose(request: Request):
        out = await _pose_of_upload(request)
        if out["keypoints"] is None:
            raise ApiError(422, f"image: {out['problem']}")
        return out

    @app.post("/api/frame")
    async def frame(request: Request):
        return await _pose_of_upload(request)

    @app.post("/api/retarget")
    async def retarget(request: Request):
        pipe = need_model()
        try:
            body = await request.json()
        except Exception:
            raise ApiError(400, "the body must be JSON {\"target\": [...], \"source\": [...]}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object with 'target' and 'source'")
        target = parse_pose(json.dumps(body.get("target")) if not isinstance(body.get("target"), str) else body["target"],
                            pipe.image_size, "target")  # fmt: skip
        source = parse_pose(json.dumps(body.get("source")), pipe.image_size, "source")
        return {"keypoints": pose_json(_retarget(target, source, pipe.image_size))}

    def _retarget(target: np.ndarray, source: np.ndarray, size) -> np.ndarray:
        out = retarget_pose(target, source, size=size)
        if not visible(out).any():
            raise ApiError(400, "retarget: no joint of the retargeted pose falls inside the frame")
        return out

    @app.post("/api/transfer")
    async def transfer(request: Request):
        pipe = need_model()
        data = await form(request, pipe.max_sources + 1)
        files = [f for f in data.getlist("source") if not isinstance(f, str)]
        if not files:
            raise ApiError(400, "the form needs at least one 'source' file")
        if len(files) > pipe.max_sources:
            raise ApiError(400, f"this {pipe.task.name} model takes at most {pipe.max_sources} source photo(s), got {len(files)}")
        images = [await _threaded(studio.decode, await f.read(), f"source {i + 1}") for i, f in enumerate(files)]
        pose_text = data.get("pose")
        kp = parse_pose(pose_text if isinstance(pose_text, str) else "", pipe.image_size)
        pose_source = f"library:{pose_text.strip()}" if pose_text.strip() in POSES else "custom"
        retargeted = str(data.get("retarget") or "").strip().lower() in _TRUE
        if retargeted:
            src_text = data.get("source_pose")
            if isinstance(src_text, str) and src_text.strip():
                src_kp = parse_pose(src_text, pipe.image_size, "source_pose")
            else:
                _, src_kp, problem, _ = await studio.queue.run(studio.extract, images[0], "source 1")
                if src_kp is None:
                    raise ApiError(422, f"retarget needs the source person's pose: source 1: {problem}")
            kp = _retarget(kp, src_kp, pipe.image_size)
        result = await studio.queue.run(pipe.transfer, images, kp)
        meta = await _threaded(studio.save_result, result, pose_source, retargeted)
        await _threaded(studio.keeper.after_job)
        return Response(png_bytes(result.image), media_type="image/png",
                        headers={"X-Result-Id": meta["id"], "X-Stages": ",".join(meta["stages"])})  # fmt: skip

    @app.get("/api/results")
    async def results():
        return {"results": studio.results()}

    @app.get("/api/results/{rid}/{name}")
    async def result_file(rid: str, name: str):
        if not _RESULT_ID.match(rid) or name not in _RESULT_FILES:
            raise ApiError(404, f"no result file {rid}/{name}")
        path = studio.results_dir / rid / name
        if not path.is_file():
            raise ApiError(404, f"no result file {rid}/{name}")
        headers = {"Content-Disposition": f'attachment; filename="{rid}-{name}"'} if name == "pose.csv" else None
        return FileResponse(path, headers=headers)

    from posetransfer.studio.animate import add_routes as add_animate_routes

    studio.animate = add_animate_routes(app, studio, need_model, form, studio.decode)  # the Animate tab (issue 13)
    studio.keeper.recover()  # before anything is served: no job survived the restart
    studio.keeper.sweep()

    # study ---------------------------------------------------------------------------------

    @app.post("/api/study/participants")
    async def new_participant():
        return need_study().new_participant()

    @app.get("/api/study/participants/{pid}")
    async def participant(pid: str):
        return need_study().participant(pid)

    @app.get("/api/study/images/{name}")
    async def study_image(name: str):
        return FileResponse(need_study().image_path(name), headers={"Cache-Control": "no-store"})

    @app.post("/api/study/answers")
    async def answer(request: Request):
        st = need_study()
        try:
            body = await request.json()
        except Exception:
            raise ApiError(400, "the body must be JSON {\"participant\", \"image\", \"answer\"}") from None
        if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("participant", "image", "answer")):
            raise ApiError(400, "the body must be a JSON object with the strings participant, image and answer")
        ms = body.get("ms")
        ms = int(ms) if isinstance(ms, (int, float)) and not isinstance(ms, bool) and math.isfinite(ms) else None
        return await _threaded(st.answer, body["participant"], body["image"], body["answer"], ms)

    @app.get("/api/study/results")
    async def study_results():
        return await _threaded(need_study().results)

    @app.get("/api/study/results.csv")
    async def study_csv():
        text = await _threaded(need_study().export_csv)
        return Response(text, media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="study-answers.csv"'})  # fmt: skip

    async def _threaded(fn, *args):
        import anyio

        return await anyio.to_thread.run_sync(fn, *args)

    return _Guard(app, limits.max_body_bytes, token)


class _Guard:
    """ASGI middleware: the body-size limit (413) and the optional token (401)."""

    def __init__(self, app, max_body: int, token: str | None):
        self.app = app
        self.max_body = int(max_body)
        self.token = token

    @property
    def state(self):
        return self.app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.requests import Request
        from starlette.responses import JSONResponse

        request = Request(scope)
        set_cookie = False
        if self.token and scope["path"] != "/healthz":
            auth = request.headers.get("authorization", "")
            header = auth[7:].strip() if auth.lower().startswith("bearer ") else None
            query = request.query_params.get("token")
            good = lambda given: given is not None and secrets.compare_digest(given.encode(), self.token.encode())  # noqa: E731
            set_cookie = good(query) and not good(request.cookies.get(TOKEN_COOKIE))
            if not (good(header) or good(request.cookies.get(TOKEN_COOKIE)) or good(query)):
                return await JSONResponse({"error": "a valid token is required (Authorization: Bearer TOKEN, or ?token= on the page)"},
                                          status_code=401)(scope, receive, send)  # fmt: skip
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await JSONResponse({"error": f"the request is larger than the limit of {self.max_body} bytes"},
                                      status_code=413)(scope, receive, send)  # fmt: skip
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge()
            return message

        async def send_with_cookie(message):
            if set_cookie and message["type"] == "http.response.start":
                cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        return await self.app(scope, counted, send_with_cookie)
