"""Image files to MNIST rows: any digit image a person makes, made to look the way MNIST's digits look.

MNIST made its digits so: each was size-normalized to fit a 20x20 box, keeping its aspect ratio, with
anti-aliasing, then centred by its centre of mass in a 28x28 field, white ink on black. `mnist` mode
does the same to any image, in these steps (numpy and Pillow, no per-pixel Python):

1. Decode: PNG, JPEG, WebP, GIF or BMP, one frame, at most `max_pixels` pixels (read from the header
   before any pixel is decoded, so a small file that claims to be huge costs nothing).
2. Colour to grey: transparent pixels are composited onto the background that contrasts with the ink
   (white under dark ink, black under light ink; the ink's shade is the mean of the opaque pixels'
   luminance), then luminance (ITU-R 601-2, as Pillow's "L").
3. Polarity: the background's level is the median of the outermost ring of pixels. Above mid-grey
   (127.5) means dark ink on light paper: the image is inverted.
4. Contrast: the background level is subtracted and the ink stretched so that its brightest pixel is 255.
5. Crop to the ink's bounding box: pixels above `INK_THRESHOLD` of full scale. None: a 422.
6. Scale the longer side to 20 px, keeping the aspect ratio, with Pillow's anti-aliased LANCZOS.
7. Paste into 28x28 so that the centre of mass (intensity-weighted) falls where MNIST's do, on row
   and column 14 (0-based), shifted by whole pixels; then stretch again so the brightest pixel is 255,
   as in MNIST.

`auto` leaves an image alone when it already is MNIST-like: 28x28 with a dark background; anything
else goes through `mnist`. `none` only converts a 28x28 image to grey, bit for bit as before
preprocessing existed, and refuses other sizes.
"""

import base64
import io
import warnings
from enum import Enum

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service.errors import InvalidInput

IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp")
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "BMP", "GIF", "WEBP"})
SIDE = 28  # MNIST's field
BOX = 20  # MNIST's box for the digit itself
INK_THRESHOLD = 0.2  # of full scale, after steps 3 and 4: what counts as ink for the bounding box
MID_GREY = 127.5
CENTRE = 14.0  # where MNIST's digits have their centre of mass (row and column, 0-based; mean of the test set)


class Preprocess(str, Enum):
    AUTO = "auto"
    MNIST = "mnist"
    NONE = "none"


def is_image(media_type: str) -> bool:
    return media_type in IMAGE_MEDIA_TYPES


def parse_mode(value: str | None) -> Preprocess:
    if value is None:
        return Preprocess.AUTO
    try:
        return Preprocess(value)
    except ValueError:
        raise InvalidInput(f"preprocess must be one of auto, mnist or none, got {value!r}") from None


def pixels_from_image(body: bytes, mode: Preprocess = Preprocess.AUTO, *, max_pixels: int) -> np.ndarray:
    """float32 `[1, 784]` intensities, 0..255, white ink on black, as MNIST: what the model sees."""
    image = _decode(body, max_pixels)
    if mode is Preprocess.NONE and image.size != (SIDE, SIDE):
        width, height = image.size
        raise InvalidInput(f"preprocess=none needs a {SIDE}x{SIDE} image, got {width}x{height}")
    grey = None if mode is Preprocess.NONE else _to_grey(image)
    if grey is None or (mode is Preprocess.AUTO and _already_mnist(image.size, grey)):
        return np.asarray(image.convert("L"), dtype=np.float32).reshape(1, SIDE * SIDE)
    return mnist_style(grey).reshape(1, SIDE * SIDE)


def as_png(row: np.ndarray) -> str:
    """A 784-value row as a base64 28x28 greyscale PNG: the image the model saw."""
    buffer = io.BytesIO()
    Image.fromarray(np.clip(row.reshape(SIDE, SIDE), 0, 255).round().astype(np.uint8), "L").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def mnist_style(grey: np.ndarray) -> np.ndarray:
    """Steps 3 to 7 on a float32 grey image of any size: a float32 28x28, white ink on black."""
    background = _border_level(grey)
    ink = background - grey if background > MID_GREY else grey - background
    np.clip(ink, 0, None, out=ink)
    peak = float(np.max(ink))
    if peak <= 0:
        raise InvalidInput("the image has no ink: every pixel is the background's shade")
    ink *= 255.0 / peak
    rows = np.flatnonzero((ink > INK_THRESHOLD * 255).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD * 255).any(axis=0))
    if rows.size == 0:
        raise InvalidInput("the image has no ink: nothing stands out from the background")
    digit = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    field = _centre_by_mass(_fit_box(digit))
    brightest = float(field.max())
    if brightest <= 0:
        raise InvalidInput("the image has no ink: what stood out vanished at 20x20")
    return field * (255.0 / brightest)


def _decode(body: bytes, max_pixels: int) -> Image.Image:
    if not body:
        raise InvalidInput("the body is empty; expected an image file")
    try:
        with warnings.catch_warnings():
            # Pillow warns about (or refuses) huge images in open(); the pixel limit is checked here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(body))
            width, height = image.size
            if image.format not in IMAGE_FORMATS:
                raise InvalidInput(f"{image.format} images are not read here; send PNG, JPEG, WebP, GIF or BMP")
            if width * height > max_pixels:
                raise InvalidInput(
                    f"the image is {width}x{height}, {width * height:,} pixels; at most {max_pixels:,} are read"
                )
            if width == 0 or height == 0:
                raise InvalidInput(f"the image is {width}x{height}: it has no pixels")
            frames = int(getattr(image, "n_frames", 1))
            if frames > 1:
                raise InvalidInput(f"the image is animated ({frames} frames); send a single frame")
            image.load()
            image = ImageOps.exif_transpose(image)  # a phone photo's orientation
    except Image.DecompressionBombError as e:
        raise InvalidInput(f"the image claims more pixels than can be read (at most {max_pixels:,})") from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as e:
        raise InvalidInput(f"the body is not an image that can be read ({type(e).__name__})") from e
    return image


def _already_mnist(size: tuple[int, int], grey: np.ndarray) -> bool:
    """28x28 with a dark background: `auto` leaves it as it is."""
    return size == (SIDE, SIDE) and _border_level(grey) <= MID_GREY


def _border_level(grey: np.ndarray) -> float:
    """Step 3's background level: the median of the outermost ring of pixels."""
    ring = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    return float(np.median(ring))


def _to_grey(image: Image.Image) -> np.ndarray:
    """Step 2: float32 luminance, transparent pixels composited onto the background that suits the ink."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
        grey = np.asarray(rgba.convert("L"), dtype=np.float32)
        opaque = alpha > 0.5
        ink_is_dark = not opaque.any() or float(grey[opaque].mean()) <= MID_GREY
        background = 255.0 if ink_is_dark else 0.0
        composited: np.ndarray = grey * alpha + background * (1.0 - alpha)
        return composited
    return np.asarray(image.convert("L"), dtype=np.float32)


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
