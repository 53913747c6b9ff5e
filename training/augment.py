"""Distorted copies of a batch of digits, drawn anew every epoch: shifts, small affine maps, elastic warps.

All of it is one resampling of the whole batch: every output pixel reads the input at a moved
coordinate, bilinearly. The affine part (rotation, scale, shear, shift) follows Simard et al. (2003)
and LeCun's MNIST table; the elastic part is their displacement field, uniform noise smoothed by a
Gaussian of width `sigma` and scaled by `alpha`. NOTE: vectorized over the batch in scipy, not per
image in Python, so that distorting a batch costs far less than training on it.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

SIDE = 28


@dataclass(frozen=True)
class Distortion:
    max_shift: float = 2.0  # pixels
    max_rotation_deg: float = 0.0
    max_scale: float = 0.0  # relative: 0.1 draws from 0.9..1.1
    max_shear: float = 0.0
    elastic_alpha: float = 0.0  # pixels of displacement before smoothing; 0 turns warps off
    elastic_sigma: float = 4.0

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """float32 `[N, 784]` in 0..255, distorted; the result stays within 0..255."""
        images = x.reshape(-1, SIDE, SIDE)
        n = len(images)
        grid = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) - (SIDE - 1) / 2  # [2, 28, 28], centred
        rows, cols = self._affine(grid, n, rng)
        if self.elastic_alpha > 0:
            rows += self._warp(n, rng)
            cols += self._warp(n, rng)
        index = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None], rows.shape)
        out = _ndimage().map_coordinates(images, [index, rows, cols], order=1, mode="constant", cval=0.0)
        result: np.ndarray = np.clip(out, 0, 255).astype(np.float32).reshape(n, -1)
        return result

    def _affine(self, grid: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Source coordinates of every output pixel, [N, 28, 28] each, under a random affine map per image."""
        angle = np.deg2rad(rng.uniform(-self.max_rotation_deg, self.max_rotation_deg, n))
        scale = 1 + rng.uniform(-self.max_scale, self.max_scale, n)
        shear = rng.uniform(-self.max_shear, self.max_shear, n)
        shift = rng.uniform(-self.max_shift, self.max_shift, (n, 2))
        cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
        y, x = grid[0][None], grid[1][None]
        rows = cos[:, None, None] * y - sin[:, None, None] * x
        cols = sin[:, None, None] * y + cos[:, None, None] * x + shear[:, None, None] * y
        centre = (SIDE - 1) / 2
        return (rows + centre - shift[:, 0, None, None]).astype(np.float32), (
            cols + centre - shift[:, 1, None, None]
        ).astype(np.float32)

    def _warp(self, n: int, rng: np.random.Generator) -> np.ndarray:
        noise = rng.uniform(-1, 1, (n, SIDE, SIDE)).astype(np.float32)
        smooth: np.ndarray = _ndimage().gaussian_filter(noise, sigma=(0, self.elastic_sigma, self.elastic_sigma))
        return self.elastic_alpha * smooth


def _ndimage() -> Any:
    """scipy.ndimage, imported at the first distortion: the CLI lists the distortions without loading it."""
    from scipy import ndimage

    return ndimage


DISTORTIONS: dict[str, Distortion | None] = {
    "none": None,
    "shift": Distortion(max_shift=2.0),
    "affine": Distortion(max_shift=2.0, max_rotation_deg=12.0, max_scale=0.12, max_shear=0.15),
    "elastic": Distortion(
        max_shift=2.0, max_rotation_deg=12.0, max_scale=0.12, max_shear=0.15, elastic_alpha=34.0, elastic_sigma=4.0
    ),
}
