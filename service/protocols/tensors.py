"""Raw tensor contents as both protocol families carry them: little-endian, row-major."""

import numpy as np

RAW_FP32 = np.dtype("<f4")


def raw_bytes(array: np.ndarray) -> bytes:
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
