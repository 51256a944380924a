"""The studio and the study page in a real browser: headless Debian chromium driven by Playwright.

The server runs in a thread (uvicorn) on a free local port with a tiny trained PG2 stage-II model
and a fake pose backend. Skipped when chromium or playwright is absent (``.ci/run`` installs chromium).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

from _studio import LibraryBackend, png, tiny_runs, walking_clip  # noqa: E402
from posetransfer.inference import Pipeline  # noqa: E402
from posetransfer.studio.app import create_app  # noqa: E402
from posetransfer.studio.study import Study  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tiny_runs(tmp_path_factory)
    root = tmp_path_factory.mktemp("browser")
    gen, real = root / "generated", root / "real"
    gen.mkdir()
    real.mkdir()
    for i in range(6):
        png(gen / f"g{i}.png", (64, 32), seed=i)
        png(real / f"r{i}.png", (64, 32), seed=50 + i)
    state = root / "state"
    study = Study.open(state, gen, real, per_kind=6, practice=2, show_ms=300)
    pipe = Pipeline.from_checkpoint(runs["stage2"], device="cpu", backend=LibraryBackend())
    port = _free_port()
    config = uvicorn.Config(create_app(pipe, study, state), host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", root, study
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        # a fresh --user-data-dir: Playwright takes it as a persistent context's folder
        context = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                        args=FLAGS, viewport={"width": 1280, "height": 1400})  # fmt: skip
        yield context
        context.close()


def _open_studio(browser, url):
    """A new page on the studio, ready; and the list its JavaScript errors are collected in."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    return page, errors


def test_repose_loop_in_the_browser(server, browser, tmp_path):
    url, root, _ = server
    photo = png(tmp_path / "me.png", (180, 120), seed=7)
    page, errors = _open_studio(browser, url)
    assert page.locator("#library figure").count() == 7

    page.set_input_files("#source-files", str(photo))
    page.wait_for_function("window.studio.sourcePoses.length === 1 && window.studio.sourcePoses[0] !== null", timeout=15000)
    assert page.locator("#source-previews canvas").count() == 1

    page.locator("#library figure[data-name='walking']").click()
    # drag the right wrist (joint 4) 8 model pixels left and 6 down on the editor canvas
    before = page.evaluate("window.studio.pose[4]")
    scale = page.evaluate("window.studio.scale")
    box = page.locator("#editor").bounding_box()
    x0, y0 = box["x"] + before[1] * scale, box["y"] + before[0] * scale
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 - 4 * scale, y0 + 3 * scale, steps=4)
    page.mouse.move(x0 - 8 * scale, y0 + 6 * scale, steps=4)
    page.mouse.up()
    after = page.evaluate("window.studio.pose[4]")
    assert after[0] == pytest.approx(before[0] + 6, abs=0.6) and after[1] == pytest.approx(before[1] - 8, abs=0.6)
    assert page.locator("#selected").inner_text() == "right_wrist"
    # mark it missing and bring it back, mirror twice (= the same pose)
    page.click("#missing")
    assert page.evaluate("window.studio.pose[4]") == [-1, -1]
    page.select_option("#missing-list", "4")
    page.click("#restore")
    assert page.evaluate("window.studio.pose[4][0]") >= 0
    page.mouse.move(*_joint_xy(page, 4, box, scale))
    page.mouse.down()
    page.mouse.move(x0 - 8 * scale, y0 + 6 * scale, steps=4)
    page.mouse.up()
    dragged = page.evaluate("window.studio.pose")
    page.click("#mirror")
    mirrored = page.evaluate("window.studio.pose")
    assert mirrored[7][1] == pytest.approx(31 - dragged[4][1], abs=0.01)  # the right wrist became the left one
    page.click("#mirror")
    np.testing.assert_allclose(page.evaluate("window.studio.pose"), dragged, atol=1e-6)

    page.click("#generate")
    page.wait_for_selector("#result", timeout=30000)
    page.wait_for_function("document.getElementById('result').complete && document.getElementById('result').naturalWidth > 0")
    assert page.evaluate("document.getElementById('result').naturalWidth") == 32
    assert page.locator("#results figure").count() == 4  # source, target pose, stage I, stage II (the result)
    assert page.locator("#gallery img").count() == 1
    assert page.locator("#status").inner_text() == "done"
    assert errors == []
    shot = tmp_path / "studio.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, "/tmp/studio-shot.png")
    assert shot.stat().st_size > 10_000
    # the server received the dragged pose
    meta = __import__("json").loads(next((root / "state" / "results").glob("*/meta.json")).read_text())
    assert meta["keypoints"][4] == pytest.approx(dragged[4], abs=0.01)
    page.close()


def _joint_xy(page, j, box, scale):
    y, x = page.evaluate(f"window.studio.pose[{j}]")
    return box["x"] + x * scale, box["y"] + y * scale


def test_study_page_in_the_browser(server, browser, tmp_path):
    url, _, study = server
    page = browser.new_page()
    page.goto(url + "/study")
    # the page's own clock times each image (in the browser, so a loaded machine that is slow to
    # poll from here cannot shorten what is measured): when #stimulus shows and when it hides
    page.evaluate("""() => {
        window.__shown = []; const el = document.getElementById('stimulus'); let t0 = null;
        new MutationObserver(() => {
            if (!el.hidden && t0 === null) t0 = performance.now();
            else if (el.hidden && t0 !== null) { window.__shown.push(performance.now() - t0); t0 = null; }
        }).observe(el, {attributes: true, attributeFilter: ['hidden']});
    }""")
    page.click("#start")
    for i in range(12):
        page.wait_for_selector("#answers:not([hidden])", timeout=10000)
        assert page.locator("#stimulus").is_hidden()  # the image is gone before the question
        page.keyboard.press("r" if i % 2 else "g")
        page.wait_for_function(f"window.study.index === {i + 1}")
    page.wait_for_selector("#done:not([hidden])")
    shown = page.evaluate("window.__shown")
    assert len(shown) == 12 and min(shown) >= 290, shown  # show_ms = 300 (timer granularity: a few ms)
    res = study.results()
    assert res["participants"][0]["answered"] == 12 and res["participants"][0]["practice"] == 2
    assert res["r2g"]["n"] + res["g2r"]["n"] == 10
    page.goto(url + "/study/results")
    page.wait_for_selector("#rate-r2g")
    assert page.locator("#participants tbody tr").count() == 1
    page.screenshot(path=str(tmp_path / "study-results.png"), full_page=True)
    shutil.copy(tmp_path / "study-results.png", "/tmp/studio-study-results.png")
    page.close()


def test_animate_tab_in_the_browser(server, browser, tmp_path):
    """Upload a clip, see the tracked skeleton, Render, watch the progress, the result appears."""
    pytest.importorskip("av")
    url, root, _ = server
    clip = walking_clip(tmp_path / "walk.mp4", frames=10)
    photo = png(tmp_path / "me.png", (180, 120), seed=7)
    page, errors = _open_studio(browser, url)
    assert page.locator("#animate-tab").is_hidden()
    page.click("#tab-animate")
    assert page.locator("#pose-tab").is_hidden() and page.locator("#animate-tab").is_visible()
    assert page.locator("#max-video-frames").inner_text() == "300"
    page.set_input_files("#video-file", str(clip))
    page.wait_for_selector("#skeleton-preview:not([hidden])", timeout=30000)
    page.wait_for_function("document.getElementById('skeleton-preview').naturalWidth === 96", timeout=15000)
    assert page.locator("#track-info").inner_text().startswith("10 frames at 10.0 fps, 128x96")
    page.set_input_files("#animate-sources", str(photo))
    page.check("#animate-side")
    page.click("#render")
    page.wait_for_selector("#render-progress:not([hidden])", timeout=5000)
    page.wait_for_selector("#animation-result", timeout=60000)
    page.wait_for_function("document.getElementById('animation-result').complete && "
                           "document.getElementById('animation-result').naturalWidth > 0", timeout=15000)  # fmt: skip
    assert page.evaluate("document.getElementById('animation-result').naturalWidth") == 3 * 32  # driving | skeleton | result
    assert page.evaluate("document.getElementById('render-progress').value") == 10
    assert page.locator("#render-status").inner_text() == "done"
    href = page.get_attribute("#download-animation", "href")
    assert href.endswith("/result.gif") and page.locator("#download-animation").is_visible()
    # MP4 (H.264) in a <video>: Debian's chromium plays it
    page.uncheck("#animate-side")
    page.select_option("#animate-format", "mp4")
    page.click("#render")
    page.wait_for_selector("video#animation-result", timeout=60000)
    page.wait_for_function("document.getElementById('animation-result').readyState >= 1", timeout=15000)
    assert page.evaluate("[document.getElementById('animation-result').videoWidth, "
                         "document.getElementById('animation-result').videoHeight]") == [32, 64]  # fmt: skip
    assert page.get_attribute("#download-animation", "href").endswith("/result.mp4")
    assert errors == []
    shot = tmp_path / "studio-animate.png"
    page.screenshot(path=str(shot), full_page=True)
    shutil.copy(shot, "/tmp/studio-animate.png")
    page.close()


def test_animate_tab_shows_a_failed_render(server, browser, tmp_path):
    """A render whose job fails ends as "failed" (studio/keep.py): the page shows its message, stops
    polling and lets the user render again (the same path shows a render cut by a restart)."""
    pytest.importorskip("av")
    url, _, _ = server
    clip = walking_clip(tmp_path / "walk.mp4", frames=3)
    nobody = png(tmp_path / "nobody.png", (180, 120), seed=7, black_corner=True)  # the fake detector finds no one
    page, errors = _open_studio(browser, url)
    page.click("#tab-animate")
    page.set_input_files("#video-file", str(clip))
    page.wait_for_selector("#skeleton-preview:not([hidden])", timeout=30000)
    page.set_input_files("#animate-sources", str(nobody))
    page.check("#animate-retarget")
    page.click("#render")
    page.wait_for_selector("#render-status.error", timeout=60000)
    assert page.evaluate("window.animate.meta.status") == "failed"
    assert page.locator("#render-status").inner_text() == page.evaluate("window.animate.meta.error") != ""
    polls = page.evaluate("window.animate.polls")
    page.wait_for_timeout(1000)  # more than two poll intervals: no poll after the failure
    assert page.evaluate("window.animate.polls") == polls and page.locator("#render").is_enabled()
    assert errors == []
    page.close()
