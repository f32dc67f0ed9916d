"""`imagent serve` in a real browser: Playwright drives the Debian `chromium` package, headless.

The flow of issue 16: upload a photo, "make it brighter" (the image changes, the steps list
fills), undo, paint a mask and "darken only this", download the recipe and replay it with
`imagent apply` to the same pixels as the app's own download; a second tab asking for the same
session is told it is open elsewhere. The server is started as a
user would (`imagent serve` in a subprocess on a free 127.0.0.1 port, offline planner); the
browser may reach nothing but that server. Every wait is on page state. With
IMAGENT_SCREENSHOT=1 the test writes the README screenshot, docs/img/serve.png.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (scripts/system-packages.sh installs "
                                "the Debian package; the test never downloads a browser)")

ROOT = Path(__file__).resolve().parents[2]
SHOT = ROOT / "docs" / "img" / "serve.png"
WAIT_MS = 60_000  # the longest any one page state may take to arrive on two busy cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _imagent(*args: str, env: dict[str, str] | None = None, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "from agent.cli import main; main()", *args], cwd=ROOT,
                            env=env, **kw)  # type: ignore[call-overload]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """`imagent serve` on a free port; yields its URL once the port answers (the start time is printed)."""
    port = _free_port()
    env = dict(os.environ, IMAGENT_HOME=str(tmp_path / "home"), IMAGENT_NO_EMBEDDINGS="1",
               GRADIO_TEMP_DIR=str(tmp_path / "gradio"), GRADIO_ANALYTICS_ENABLED="False")
    log = (tmp_path / "serve.log").open("wb")
    t0 = time.monotonic()
    proc = _imagent("serve", "--port", str(port), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"imagent serve exited with {proc.returncode}: {(tmp_path / 'serve.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)  # polling the port: the wait ends on the server's state, not a clock
        print(f"imagent serve answered on port {port} after {time.monotonic() - t0:.1f} s")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _status_has(page: object, text: str) -> None:
    page.wait_for_function("t => (document.querySelector('#status')?.innerText || '').includes(t)", arg=text,  # type: ignore[attr-defined]
                           timeout=WAIT_MS)


def _head(page: object) -> str:
    text = page.inner_text("#status")  # type: ignore[attr-defined]
    return text.split("now at ")[1].split()[0]


def _shown(page: object) -> np.ndarray:
    """The 'after' image of the before/after slider, as the browser received it."""
    from PIL import Image

    srcs = page.eval_on_selector_all("#compare img", "els => els.map(e => e.src)")  # type: ignore[attr-defined]
    data = page.request.get(srcs[-1]).body()  # type: ignore[attr-defined]
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)


def _after_change(page: object, old: str) -> str:
    """Wait until the status names a version other than `old` and no request is in flight."""
    page.wait_for_function(  # type: ignore[attr-defined]
        "old => { const t = document.querySelector('#status')?.innerText || '';"
        " return t.includes('now at v') && !t.includes('now at ' + old + ' ') }", arg=old, timeout=WAIT_MS)
    return _head(page)


def _ask(page: object, text: str) -> str:
    old = _head(page)
    page.fill("#goal textarea", text)  # type: ignore[attr-defined]
    page.click("#send")  # type: ignore[attr-defined]
    return _after_change(page, old)


def _paint(page: object) -> None:
    """A stroke across the upper left of the photo in the mask editor."""
    page.get_by_text("Mask: paint").click()  # type: ignore[attr-defined]
    page.locator("#editor button[aria-label='Brush']").first.click()  # type: ignore[attr-defined]
    img = page.locator("#editor canvas").first.bounding_box()  # type: ignore[attr-defined]
    x0, y0 = img["x"] + img["width"] * 0.35, img["y"] + img["height"] * 0.3
    page.mouse.move(x0, y0)  # type: ignore[attr-defined]
    page.mouse.down()  # type: ignore[attr-defined]
    for i in range(1, 12):
        page.mouse.move(x0 + i * 6, y0 + (i % 3) * 6)  # type: ignore[attr-defined]
    page.mouse.up()  # type: ignore[attr-defined]


def _download(page: object, button: str, name: str, dest: Path) -> Path:
    """Click `button`, wait for the download link whose file name holds `name`, and save the file."""
    page.click(button)  # type: ignore[attr-defined]
    link = page.locator(f"#download a[download*='{name}']").first  # type: ignore[attr-defined]
    link.wait_for(timeout=WAIT_MS)
    with page.expect_download(timeout=WAIT_MS) as info:  # type: ignore[attr-defined]
        link.click()
    d = info.value
    path = dest / d.suggested_filename
    d.save_as(path)
    return path


def test_upload_edit_undo_mask_download_replay(server: str, dark_photo: Path, tmp_path: Path) -> None:
    from PIL import Image

    if os.environ.get("IMAGENT_SCREENSHOT"):  # a sharper photo for the README; the flow is the same
        from tests.helpers import sample
        from tools.degrade import underexpose
        from tools.io import save_image

        dark_photo = save_image(underexpose(sample("astronaut", (480, 360)), 1.0), tmp_path / "astronaut.jpg")

    external: list[str] = []
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)

        def local_only(route: object) -> None:  # the app must work with no network beyond its server
            url = route.request.url  # type: ignore[attr-defined]
            if url.startswith(server):
                route.continue_()  # type: ignore[attr-defined]
            else:
                external.append(url)
                route.abort()  # type: ignore[attr-defined]

        page.route("**/*", local_only)
        page.goto(server)
        _status_has(page, "Upload a photo")
        page.locator("#upload input[type=file], input[type=file]").first.set_input_files(str(dark_photo))
        _status_has(page, "now at v0")
        before = _shown(page)

        head = _ask(page, "make it brighter")
        assert page.locator("#steps tbody tr").count() >= 1, "the steps list fills"
        assert "kept" in page.inner_text("#steps")
        after = _shown(page)
        assert after.mean() > before.mean() + 5, "the shown image got brighter"
        assert page.locator("#versions img").count() >= 2, "the versions strip shows the new version"

        page.click("#undo")
        assert _after_change(page, head) == "v0"

        _paint(page)
        page.click("#make-mask")
        _status_has(page, "mask 'brush' added")
        assert page.input_value("#confine input") == "brush"
        _ask(page, "darken only this")
        assert "@brush" in page.inner_text("#steps"), "every edit is confined to the painted mask"
        if os.environ.get("IMAGENT_SCREENSHOT"):
            SHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOT), full_page=False)

        image = _download(page, "#get-image", "-v", tmp_path)
        recipe = _download(page, "#get-recipe", ".recipe", tmp_path)

        other = browser.new_page(viewport={"width": 1400, "height": 1000})  # a second tab, its own state
        other.route("**/*", local_only)
        other.goto(server)
        _status_has(other, "Upload a photo")
        other.click("#refresh")
        other.click("#sessions input")
        other.locator("[role=option]").first.click()
        other.click("#open")
        _status_has(other, "open in another browser tab")
        assert "now at" in page.inner_text("#status"), "the first tab is unaffected"
        browser.close()
    assert external == [], f"the page asked for outside resources: {external[:5]}"

    if recipe.suffix == ".zip":  # a recipe with masks comes with them
        with zipfile.ZipFile(recipe) as z:
            z.extractall(tmp_path / "recipe")
            recipe = next((tmp_path / "recipe").glob("*.recipe.json"))
    replay = tmp_path / "replay.png"
    done = _imagent("apply", str(recipe), str(dark_photo), "-o", str(replay))
    assert done.wait(timeout=120) == 0
    a, b = np.asarray(Image.open(image)), np.asarray(Image.open(replay))
    assert a.shape == b.shape and np.array_equal(a, b), "the recipe replays to the app's own pixels"
