"""Images that are not MNIST's: non-digits for outlier exposure, and printed digits, made in MNIST's style.

Non-digits teach the model what a digit is not (Hendrycks et al. 2019, "Deep Anomaly Detection with
Outlier Exposure"): it learns to spread its probabilities evenly over the ten classes for them. They
are letters and symbols that do not read as digits, rendered from the fonts matplotlib ships (the same
on every machine), smooth random pen curves, noise and blanks. Printed digits come from the same fonts.
Every glyph goes through `contract.mnist_style`, as an uploaded image does in the server.

NOTE: the held-out sets that measure all this (bench/strokes.py, bench/people.py) draw other shapes
with another pen, and print digits in other fonts; nothing here is tuned on them.
"""

from collections.abc import Callable
from functools import cache, lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from contract import IMAGE_PIXELS
from contract.mnist_style import NoInk, mnist_style
from training.data import Digits

# Letters, in both cases, and symbols that do not read as digits: no O, o, Q, D, θ, Φ, σ (0), I, l, i, j
# and no brackets or bars (1), Z, z (2), S, s, $ (5), G, b (6), T (7), B, & (8), g, q (9).
NON_DIGIT_CHARACTERS = "ACEFHKLMNPRUVWXYacefhkmnprtuvwxy#%*+=?@<>~^αβγδελμπωΣΩΨ"
_FONT_FILES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
    "STIXGeneralBolIta.ttf",
    "cmr10.ttf",
    "cmb10.ttf",
    "cmss10.ttf",
    "cmti10.ttf",
    "cmtt10.ttf",
)
_CANVAS = 160
NON_DIGIT_KINDS = ("glyph", "curve", "noise", "blank")
_KIND_SHARES = (0.5, 0.35, 0.1, 0.05)

Maker = Callable[[np.random.Generator], np.ndarray]


@cache
def fonts() -> tuple[Path, ...]:
    """matplotlib's own fonts: every machine with the training dependencies has the same files."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return tuple(folder / name for name in _FONT_FILES if (folder / name).is_file())


# NOTE: both are pure functions of their arguments, and drawing is slow (about 3 ms an image, most of it
# Pillow's round line joints in Python): the last few drawn are kept, read-only, for the process. A process
# that exports again on the same splits (the suite, a notebook) asks for the same ones again.
@lru_cache(maxsize=4)
def non_digits(count: int, seed: int) -> np.ndarray:
    """float32 `[count, 784]` non-digits, 0..255, in the shares of NON_DIGIT_KINDS; read-only."""
    rng = np.random.default_rng(seed)
    makers: dict[str, Maker] = {"glyph": _glyph, "curve": _curves, "noise": _noise}
    kinds = rng.choice(len(NON_DIGIT_KINDS), size=count, p=_KIND_SHARES)
    rows = [_blank(rng) if NON_DIGIT_KINDS[k] == "blank" else _styled(makers[NON_DIGIT_KINDS[k]], rng) for k in kinds]
    return _read_only(np.stack(rows).astype(np.float32) if rows else np.zeros((0, IMAGE_PIXELS), np.float32))


@lru_cache(maxsize=4)
def printed_digits(count: int, seed: int) -> Digits:
    """`count` digits printed in matplotlib's fonts, at random sizes, weights and small rotations; read-only."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    rows = [_styled(partial(_text, str(digit), rotate=8), rng) for digit in labels]
    return Digits(_read_only(np.stack(rows).astype(np.float32)), _read_only(labels.astype(np.int64)))


def _read_only(x: np.ndarray) -> np.ndarray:
    x.flags.writeable = False
    return x


def _styled(make: Maker, rng: np.random.Generator) -> np.ndarray:
    """A grey image in MNIST's style, flattened; one with no ink at all stays blank."""
    grey = make(rng)
    try:
        return mnist_style(grey).reshape(IMAGE_PIXELS)
    except NoInk:
        return np.zeros(IMAGE_PIXELS, np.float32)


def _glyph(rng: np.random.Generator) -> np.ndarray:
    return _text(NON_DIGIT_CHARACTERS[int(rng.integers(len(NON_DIGIT_CHARACTERS)))], rng, rotate=15)


def _text(text: str, rng: np.random.Generator, *, rotate: float) -> np.ndarray:
    candidates = [path for path in fonts() if _has_glyph(path, text)]
    font = ImageFont.truetype(str(candidates[int(rng.integers(len(candidates)))]), int(rng.integers(50, 110)))
    page = Image.new("L", (_CANVAS, _CANVAS), 0)
    ImageDraw.Draw(page).text((_CANVAS / 2, _CANVAS / 2), text, fill=255, font=font, anchor="mm")
    page = page.rotate(float(rng.uniform(-rotate, rotate)), resample=Image.Resampling.BILINEAR)
    return np.asarray(page, np.float32)


@cache
def _has_glyph(path: Path, text: str) -> bool:
    """Whether the font draws `text` itself rather than its box for missing glyphs (which reads as a 0)."""
    font = ImageFont.truetype(str(path), 40)
    return bytes(font.getmask(text)) != bytes(font.getmask("\uffff"))


def _curves(rng: np.random.Generator) -> np.ndarray:
    """Two or three smooth random pen strokes through five to eight points each: tangles and scrawls.
    NOTE: fewer strokes, or fewer points, too often draw a 1, a 2, a 7 or a 0."""
    page = Image.new("L", (_CANVAS, _CANVAS), 0)
    pen = ImageDraw.Draw(page)
    width = int(rng.integers(4, 16))
    for _ in range(int(rng.integers(2, 4))):
        knots = rng.uniform(15, _CANVAS - 15, (int(rng.integers(5, 9)), 2))
        pen.line([tuple(p) for p in _spline(knots)], fill=255, width=width, joint="curve")
    return np.asarray(page, np.float32)


def _spline(knots: np.ndarray, per_segment: int = 12) -> np.ndarray:
    """A Catmull-Rom curve through the knots."""
    padded = np.vstack([knots[:1], knots, knots[-1:]])
    t = np.linspace(0, 1, per_segment)[:, None]
    segments = []
    for p0, p1, p2, p3 in zip(padded, padded[1:], padded[2:], padded[3:], strict=False):
        segments.append(
            0.5
            * (2 * p1 + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2 + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    return np.vstack(segments)


def _noise(rng: np.random.Generator) -> np.ndarray:
    """Speckle, or blotches."""
    if rng.random() < 0.5:
        return (rng.random((28, 28)) < rng.uniform(0.05, 0.5)).astype(np.float32) * 255
    yy, xx = np.mgrid[0:28, 0:28]
    blobs = sum(
        np.exp(-((yy - c[0]) ** 2 + (xx - c[1]) ** 2) / (2 * rng.uniform(1, 5) ** 2))
        for c in rng.uniform(0, 28, (int(rng.integers(3, 8)), 2))
    )
    return np.asarray(blobs, np.float32) * 255


def _blank(rng: np.random.Generator) -> np.ndarray:
    """Nothing, or a faint haze, or a single dot, as raw pixels (a JSON client's blank, not an upload's)."""
    page = np.zeros((28, 28), np.float32)
    kind = int(rng.integers(3))
    if kind == 1:
        page += rng.uniform(0, 40)
    elif kind == 2:
        y, x = rng.integers(4, 24, 2)
        page[y : y + 2, x : x + 2] = 255
    return page.reshape(IMAGE_PIXELS)
