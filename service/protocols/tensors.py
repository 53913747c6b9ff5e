"""Raw tensor contents as both protocol families carry them: little-endian, row-major."""

import numpy as np

RAW_FP32 = np.dtype("<f4")


def raw_bytes(array: np.ndarray) -> bytes:
    """A tensor's binary form: little-endian numbers, or for BYTES (an array of bytes objects) each element
    as its 4-byte little-endian length and then its bytes, as the Open Inference Protocol has it."""
    if array.dtype == object:
        return b"".join(len(element).to_bytes(4, "little") + element for element in array.reshape(-1))
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
