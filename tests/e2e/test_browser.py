"""The draw-a-digit page and the API docs, in a real headless Chromium, against a real server.

Digits are drawn with real pointer events: each row of an official test digit, scaled 10x onto the
280x280 canvas, is traced as a stroke wherever its ink is. The browser is the system's Chromium
(Debian's `chromium`, installed by scripts/system-deps.sh as root), driven by Playwright; nothing is
downloaded, and every request the page makes must go to the server on 127.0.0.1.
"""

import contextlib
import io
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from contract import list_versions
from contract.feedback import read_corrections
from service.security.keys import digest_line
from tests.e2e.server import REPO_ROOT, ServerProcess
from tests.helpers import DEFAULT_VERSION
from training.data import Digits, load_embedded, load_source

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCALE = 10  # canvas pixels per MNIST pixel
CANVAS_IS_EMPTY = """() => {
  const c = document.getElementById("pad");
  return c.getContext("2d").getImageData(0, 0, c.width, c.height).data.every((v, i) => i % 4 !== 3 || v === 0);
}"""
STROKE_INK = 128  # MNIST pixels at least this bright are traced
SERVED = sorted(list_versions(REPO_ROOT / "models" / "mnist"))[-2:]  # the server keeps the newest two


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(REPO_ROOT / "models", tmp_path_factory.mktemp("logs") / "server.log") as process:
        yield process


@pytest.fixture(scope="module")
def digits(mnist_dir: Path | None) -> Digits:
    """Official test digits when this machine has them; else the embedded ones (training digits)."""
    if mnist_dir is not None:
        test = load_source(str(mnist_dir)).test
        assert test is not None
        return test
    return load_embedded()


@dataclass
class Watch:
    """What a page did that it must not: requests away from the server, console errors, exceptions."""

    server_url: str
    outside: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def request(self, url: str) -> None:
        if not url.startswith((self.server_url, "data:", "blob:")):
            self.outside.append(url)


@pytest.fixture
def watch(server: ServerProcess) -> Watch:
    return Watch(server.url)


@pytest.fixture
def page(tmp_path: Path, watch: Watch) -> Iterator[Any]:
    with _open_page(tmp_path / "profile", watch) as page:
        yield page


@contextlib.contextmanager
def _open_page(profile: Path, watch: Watch) -> Iterator[Any]:
    """A page in a fresh Chromium whose only reachable host is `watch.server_url`."""
    if CHROMIUM is None:
        pytest.skip("no Chromium here (scripts/system-deps.sh installs Debian's as root)")
    playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is in the dev extra")
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            # Anything not for the server is refused: the network is closed to the page.
            context.route(
                "**/*",
                lambda route: route.continue_() if route.request.url.startswith(watch.server_url) else route.abort(),
            )
            page = context.pages[0] if context.pages else context.new_page()
            page.on("request", lambda r: watch.request(r.url))
            page.on("console", lambda m: watch.problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: watch.problems.append(str(e)))
            yield page
            assert watch.outside == [], f"requests left 127.0.0.1: {watch.outside}"
            assert watch.problems == [], f"console errors: {watch.problems}"
        finally:
            context.close()


def _draw(page: Any, pixels: np.ndarray) -> None:
    """Trace each row's ink, left to right, as one pointer stroke per run of inked pixels."""
    box = page.locator("#pad").bounding_box()
    step = box["width"] / (28 * SCALE) * SCALE
    image = pixels.reshape(28, 28) >= STROKE_INK
    for row in range(28):
        columns = np.flatnonzero(image[row])
        if columns.size == 0:
            continue
        runs = np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1)
        for run in runs:
            y = box["y"] + (row + 0.5) * step
            page.mouse.move(box["x"] + (run[0] + 0.5) * step, y)
            page.mouse.down()
            page.mouse.move(box["x"] + (run[-1] + 0.5) * step, y, steps=max(2, len(run)))
            page.mouse.up()


def _settled(page: Any) -> None:
    """Wait until the answer to the last stroke is in: no request in flight, none waiting to be sent."""
    page.wait_for_function("() => document.body.dataset.busy === 'false'", timeout=15_000)


def _first_of_each(digits: Digits, wanted: tuple[int, ...]) -> list[tuple[int, np.ndarray]]:
    return [(d, digits.x[np.flatnonzero(digits.y == d)[0]]) for d in wanted]


def test_drawn_digits_are_read_and_clear_empties_the_page(page: Any, server: ServerProcess, digits: Digits) -> None:
    from playwright.sync_api import expect

    page.goto(server.url + "/")
    expect(page.locator("#model option")).to_have_count(1 + len(SERVED))  # newest healthy, then each by number
    sure = []
    for label, pixels in _first_of_each(digits, (0, 1, 7, 3)):
        _draw(page, pixels)
        expect(page.locator("#digit")).to_have_text(str(label), timeout=15_000)
        expect(page.locator("#seen")).to_be_visible()
        expect(page.locator("#served-by")).to_have_text(f"answered by mnist version {DEFAULT_VERSION.name}")
        expect(page.locator("#confidence")).to_contain_text("% probable")
        expect(page.locator("#correct")).to_be_hidden()  # this server keeps no corrections
        _settled(page)
        sure.append(page.locator("#doubt").is_hidden())
        if label == 7 and os.environ.get("PAGE_SCREENSHOT"):  # how docs/page.png was taken
            page.screenshot(path=os.environ["PAGE_SCREENSHOT"])
        page.get_by_role("button", name="Clear").click()
        expect(page.locator("#digit")).to_have_text("–")
        assert page.evaluate(CANVAS_IS_EMPTY)
    # Traced row by row, a digit is rougher than its original: most, not all, are confident.
    assert sum(sure) >= 3, sure


# Letters drawn as a person draws them, in canvas pixels: strokes of (x, y) points on the 280x280 pad.
LETTERS = {
    "X": [[(60, 50), (220, 230)], [(220, 50), (60, 230)]],
    "K": [[(90, 40), (90, 240)], [(210, 40), (95, 150)], [(125, 120), (215, 240)]],
}


def _strokes(page: Any, strokes: list[list[tuple[int, int]]]) -> None:
    box = page.locator("#pad").bounding_box()
    scale = box["width"] / 280
    for stroke in strokes:
        (x0, y0), *rest = stroke
        page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=12)
        page.mouse.up()


@pytest.mark.parametrize("letter", sorted(LETTERS))
def test_a_drawn_letter_gets_no_confident_answer(page: Any, server: ServerProcess, letter: str) -> None:
    from playwright.sync_api import expect

    page.goto(server.url + "/")
    _strokes(page, LETTERS[letter])
    expect(page.locator("#seen")).to_be_visible(timeout=15_000)
    _settled(page)
    expect(page.locator("#doubt")).to_be_visible()
    expect(page.locator("#doubt")).to_have_text(re.compile("doesn't look like a digit|Not sure"))
    expect(page.locator("#digit")).to_have_class(re.compile("doubtful"))


HEATMAP_PAINTED = """() => {
  const c = document.getElementById("heatmap");
  return c.getContext("2d").getImageData(0, 0, 28, 28).data.filter((v, i) => i % 4 === 3 && v > 0).length;
}"""


def test_show_why_lays_the_attributions_over_what_the_model_saw(
    page: Any, server: ServerProcess, digits: Digits
) -> None:
    from playwright.sync_api import expect

    page.goto(server.url + "/")
    page.get_by_label("Show why").check()
    _draw(page, _first_of_each(digits, (7,))[0][1])
    expect(page.locator("#heatmap")).to_be_visible(timeout=15_000)
    expect(page.locator("#digit")).to_have_text("7")
    assert page.evaluate(HEATMAP_PAINTED) > 20  # the strokes' pixels carry attributions
    page.get_by_label("Show why").uncheck()
    expect(page.locator("#heatmap")).to_be_hidden(timeout=15_000)


def test_on_a_phone_the_answer_stays_in_view_while_drawing(page: Any, server: ServerProcess, digits: Digits) -> None:
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(server.url + "/")
    _draw(page, _first_of_each(digits, (2,))[0][1])
    expect(page.locator("#digit")).to_have_text("2", timeout=15_000)
    for element in ("#digit", "#confidence", "#pad"):
        box = page.locator(element).bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 844, (element, box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, (element, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing runs off the side


def test_an_uploaded_photo_like_png_is_read(page: Any, server: ServerProcess, digits: Digits, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    label, pixels = _first_of_each(digits, (4,))[0]
    path = tmp_path / "four.png"
    path.write_bytes(_photo_like(pixels))
    page.goto(server.url + "/")
    page.set_input_files("#file", str(path))
    expect(page.locator("#digit")).to_have_text(str(label), timeout=15_000)
    expect(page.locator("#error")).to_be_hidden()


def test_a_bad_upload_is_explained_in_words(page: Any, server: ServerProcess, watch: Watch, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    path = tmp_path / "blank.png"
    buffer = io.BytesIO()
    Image.new("L", (200, 200), 255).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    page.goto(server.url + "/")
    page.set_input_files("#file", str(path))
    expect(page.locator("#error")).to_contain_text("no ink")
    watch.problems[:] = [p for p in watch.problems if "422" not in p]  # the browser logs the 4xx itself


def test_the_api_docs_render_offline(page: Any, server: ServerProcess) -> None:
    from playwright.sync_api import expect

    page.goto(server.url + "/docs")
    expect(page.locator(".opblock-summary-path", has_text="/predict").first).to_be_visible(timeout=15_000)


def test_the_pages_carry_a_strict_content_security_policy(page: Any, server: ServerProcess) -> None:
    for path in ("/", "/docs"):
        policy = page.goto(server.url + path).headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy and "http" not in policy


def _photo_like(pixels: np.ndarray) -> bytes:
    """Dark ink on white paper, 500x500, RGBA, the digit off-centre: a PNG such as a person would make."""
    ink = Image.fromarray(pixels.reshape(28, 28).astype(np.uint8)).resize((300, 300), Image.Resampling.BICUBIC)
    alpha = np.asarray(ink)
    rgba = np.zeros((500, 500, 4), np.uint8)
    rgba[60:360, 150:450, 3] = alpha  # transparent where there is no ink
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    keys = tmp_path_factory.mktemp("keys") / "api-keys"
    keys.write_text(digest_line(PAGE_KEY) + "\n")
    logs = tmp_path_factory.mktemp("logs") / "server.log"
    with ServerProcess(REPO_ROOT / "models", logs, api_keys_file=keys, versions_to_keep=1) as process:
        yield process


PAGE_KEY = "the-page-key-0123456789"


def test_a_server_that_wants_a_key_gets_one_from_the_user(
    tmp_path: Path, keyed_server: ServerProcess, digits: Digits
) -> None:
    from playwright.sync_api import expect

    watch = Watch(keyed_server.url)
    with _open_page(tmp_path / "profile", watch) as page:
        page.goto(keyed_server.url + "/")
        _draw(page, _first_of_each(digits, (7,))[0][1])
        field = page.get_by_label("This server asks for an API key")
        expect(field).to_be_visible(timeout=15_000)
        expect(page.locator("#error")).to_contain_text("API key")
        field.fill("not-the-key-of-this-server")
        page.get_by_role("button", name="Use the key").click()
        expect(field).to_be_visible(timeout=15_000)  # asked again: that key was turned away
        field.fill(PAGE_KEY)
        page.get_by_role("button", name="Use the key").click()
        expect(page.locator("#digit")).to_have_text("7", timeout=15_000)
        expect(field).to_be_hidden()
        expect(page.locator("#error")).to_be_hidden()
        page.get_by_role("button", name="Clear").click()
        _draw(page, _first_of_each(digits, (1,))[0][1])  # the key is kept for the next drawing
        expect(page.locator("#digit")).to_have_text("1", timeout=15_000)
        expect(field).to_be_hidden()
        watch.problems[:] = [p for p in watch.problems if "401" not in p]  # the browser logs the 4xx itself


def test_a_wrong_answer_is_corrected_with_one_click_and_kept_for_training(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, digits: Digits
) -> None:
    from playwright.sync_api import expect

    folder = tmp_path / "feedback"
    folder.mkdir()
    logs = tmp_path_factory.mktemp("logs") / "server.log"
    with ServerProcess(REPO_ROOT / "models", logs, feedback_dir=folder, versions_to_keep=1) as server:
        watch = Watch(server.url)
        with _open_page(tmp_path / "profile", watch) as page:
            page.goto(server.url + "/")
            _draw(page, _first_of_each(digits, (7,))[0][1])
            expect(page.locator("#digit")).to_have_text("7", timeout=15_000)
            _settled(page)
            page.get_by_role("button", name="That's a 1").click()  # as if it were a 1 the model misread
            expect(page.locator("#thanks")).to_have_text("Thanks: kept as a 1, for the next model.")
            expect(page.locator("#correct")).to_be_hidden()
    pixels, labels, _ = read_corrections(folder)
    assert labels.tolist() == [1] and pixels.shape == (1, 784) and pixels.max() == 255  # the 28x28 it saw
