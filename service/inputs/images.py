"""Image files to MNIST rows: any digit image a person makes, made to look the way MNIST's digits look.

`mnist` mode does to any image what MNIST did to its digits, in these steps:

1. Decode: PNG, JPEG, WebP, GIF or BMP, one frame, at most `max_pixels` pixels (read from the header
   before any pixel is decoded, so a small file that claims to be huge costs nothing).
2. Colour to grey: transparent pixels are composited onto the background that contrasts with the ink
   (white under dark ink, black under light ink; the ink's shade is the mean of the opaque pixels'
   luminance), then luminance (ITU-R 601-2, as Pillow's "L").
3. to 7. `contract.mnist_style`: polarity from the border, contrast, crop to the ink (none: a 422),
   the longer side to 20 px, the centre of mass on MNIST's.

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

from contract.mnist_style import MID_GREY, SIDE, NoInk, border_level, mnist_style
from service.errors import InvalidInput

IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp")
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "BMP", "GIF", "WEBP"})


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
    try:
        return mnist_style(grey).reshape(1, SIDE * SIDE)
    except NoInk as e:
        raise InvalidInput(str(e)) from None


def as_png(row: np.ndarray) -> str:
    """A 784-value row as a base64 28x28 greyscale PNG: the image the model saw."""
    buffer = io.BytesIO()
    Image.fromarray(np.clip(row.reshape(SIDE, SIDE), 0, 255).round().astype(np.uint8), "L").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


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
    return size == (SIDE, SIDE) and border_level(grey) <= MID_GREY


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
