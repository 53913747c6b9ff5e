"""What an MNIST digit looks like, as a recipe any grey image can follow: what the server does to an image
file, and what training does to glyphs it renders, so that both hand the model the same kind of input.

MNIST made its digits so: each was size-normalized to fit a 20x20 box, keeping its aspect ratio, with
anti-aliasing, then centred by its centre of mass in a 28x28 field, white ink on black. `mnist_style`
does the same to any grey image (numpy and Pillow, no per-pixel Python):

1. Polarity: the background's level is the median of the outermost ring of pixels. Above mid-grey
   (127.5) means dark ink on light paper: the image is inverted.
2. Contrast: the background level is subtracted and the ink stretched so that its brightest pixel is 255.
3. Crop to the ink's bounding box: pixels above `INK_THRESHOLD` of full scale.
4. Scale the longer side to 20 px, keeping the aspect ratio, with Pillow's anti-aliased LANCZOS.
5. Paste into 28x28 so that the centre of mass (intensity-weighted) falls where MNIST's do, on row
   and column 14 (0-based), shifted by whole pixels; then stretch again so the brightest pixel is 255,
   as in MNIST.
"""

import numpy as np
from PIL import Image

SIDE = 28  # MNIST's field
BOX = 20  # MNIST's box for the digit itself
INK_THRESHOLD = 0.2  # of full scale, after steps 1 and 2: what counts as ink for the bounding box
MID_GREY = 127.5
CENTRE = 14.0  # where MNIST's digits have their centre of mass (row and column, 0-based; mean of the test set)


class NoInk(ValueError):
    """Nothing in the image stands out from its background."""


def mnist_style(grey: np.ndarray) -> np.ndarray:
    """A float32 grey image of any size as a float32 28x28, white ink on black, 0..255; NoInk if it has none."""
    background = border_level(grey)
    ink = background - grey if background > MID_GREY else grey - background
    np.clip(ink, 0, None, out=ink)
    peak = float(np.max(ink))
    if peak <= 0:
        raise NoInk("the image has no ink: every pixel is the background's shade")
    ink *= 255.0 / peak
    rows = np.flatnonzero((ink > INK_THRESHOLD * 255).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD * 255).any(axis=0))
    if rows.size == 0:
        raise NoInk("the image has no ink: nothing stands out from the background")
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    field = _centre_by_mass(_fit_box(digit))
    brightest = float(field.max())
    if brightest <= 0:
        raise NoInk("the image has no ink: what stood out vanished at 20x20")
    out: np.ndarray = field * (255.0 / brightest)
    return out


def border_level(grey: np.ndarray) -> float:
    """Step 1's background level: the median of the outermost ring of pixels."""
    ring = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    return float(np.median(ring))


def _fit_box(digit: np.ndarray) -> np.ndarray:
    """Step 6: the longer side to BOX pixels, aspect kept, anti-aliased."""
    height, width = digit.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(digit.astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS)
    box: np.ndarray = np.clip(np.asarray(resized, dtype=np.float32), 0, 255)
    return box


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    """Step 7: into 28x28, the centre of mass on the centre (shifted whole pixels, clipped at the edges)."""
    height, width = digit.shape
    total = float(digit.sum())
    ys, xs = np.indices(digit.shape)
    centre_y = float((ys * digit).sum()) / total if total > 0 else (height - 1) / 2
    centre_x = float((xs * digit).sum()) / total if total > 0 else (width - 1) / 2
    top = round(CENTRE - centre_y)
    left = round(CENTRE - centre_x)
    field = np.zeros((SIDE, SIDE), np.float32)
    src_top, src_left = max(0, -top), max(0, -left)
    dst_top, dst_left = max(0, top), max(0, left)
    rows = min(height - src_top, SIDE - dst_top)
    cols = min(width - src_left, SIDE - dst_left)
    field[dst_top : dst_top + rows, dst_left : dst_left + cols] = digit[
        src_top : src_top + rows, src_left : src_left + cols
    ]
    return field
