"""Image files to pixels: a 28 x 28 PNG (or any format Pillow reads) becomes one MNIST-style row.

No resizing: MNIST digits are centred in a 20 x 20 box inside 28 x 28, and a silent resize of an
arbitrary photo would give confident nonsense. The size is read from the header before any pixel is
decoded, so a small file that claims to be huge costs nothing.
"""

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.errors import InvalidInput

IMAGE_MEDIA_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp")
SIDE = 28


def is_image(media_type: str) -> bool:
    return media_type in IMAGE_MEDIA_TYPES


def pixels_from_image(body: bytes) -> np.ndarray:
    """float32 `[1, 784]` intensities from an image file: white (255) ink on black, as MNIST."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about (or refuses) huge images in open(); anything but 28x28 is refused here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(body)) as image:
                if image.size != (SIDE, SIDE):
                    width, height = image.size
                    raise InvalidInput(f"expected a {SIDE}x{SIDE} image, got {width}x{height}")
                gray = np.asarray(image.convert("L"), dtype=np.float32)
    except Image.DecompressionBombError as e:
        raise InvalidInput(f"expected a {SIDE}x{SIDE} image; this one claims billions of pixels") from e
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InvalidInput(f"the body is not an image Pillow can read ({type(e).__name__})") from e
    return gray.reshape(1, SIDE * SIDE)
