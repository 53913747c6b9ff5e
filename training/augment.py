"""Distorted copies of a batch of digits, drawn anew every epoch: shifts, small affine maps, elastic warps,
and the pens and resolutions people use.

The geometry is one resampling of the whole batch: every output pixel reads the input at a moved
coordinate, bilinearly. The affine part (rotation, scale, shear, shift) follows Simard et al. (2003)
and LeCun's MNIST table; the elastic part is their displacement field, uniform noise smoothed by a
Gaussian of width `sigma` and scaled by `alpha`. Then the pen: a quarter of the digits get a thinner
stroke (grey erosion) and half a thicker one (grey dilation, by one or two pixels), as the page's
pens of several widths draw them; a share of them is stretched to fill its box whatever its shape, as
NIST's normalization did to the UCI digits (a 1 as wide as an 8); and a share is blurred to a low
resolution and back, as a small or scanned digit arrives. NOTE: vectorized over the batch in scipy,
not per image in Python (but for the stretch, on a few images), so that distorting a batch costs far
less than training on it.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

SIDE = 28


@dataclass(frozen=True)
class Distortion:
    max_shift: float = 2.0  # pixels
    max_rotation_deg: float = 0.0
    max_scale: float = 0.0  # relative: 0.1 draws from 0.9..1.1
    max_shear: float = 0.0
    elastic_alpha: float = 0.0  # pixels of displacement before smoothing; 0 turns warps off
    elastic_sigma: float = 4.0
    pen_widths: bool = False  # thinner and thicker strokes
    stretched: float = 0.0  # the share of digits stretched to fill a square box
    low_resolution: float = 0.0  # the share of digits blurred to 7 to 14 pixels across and back

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
        if self.pen_widths:
            out = _pens(out, rng)
        if self.stretched > 0:
            out = _stretched(out, rng.random(n) < self.stretched)
        if self.low_resolution > 0:
            out = _blurred(out, rng.random(n) < self.low_resolution, rng)
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


def _pens(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A quarter of the images with a thinner stroke, a quarter each with one thicker by one and by two pixels."""
    ndimage = _ndimage()
    pen = rng.integers(0, 4, len(images))  # 0: thinner, 1: as drawn, 2: thicker, 3: thicker still
    out: np.ndarray = images.copy()
    out[pen == 0] = ndimage.grey_erosion(images[pen == 0], size=(1, 2, 2))
    out[pen == 2] = ndimage.grey_dilation(images[pen == 2], size=(1, 2, 2))
    out[pen == 3] = ndimage.grey_dilation(images[pen == 3], size=(1, 3, 3))
    return out


def _stretched(images: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The chosen images' ink stretched to fill the middle 20x20, aspect ratio not kept."""
    out: np.ndarray = images.copy()
    side, box = images.shape[1], 20
    for i in np.flatnonzero(chosen):
        rows = np.flatnonzero(images[i].max(axis=1) > 51)
        cols = np.flatnonzero(images[i].max(axis=0) > 51)
        if rows.size < 2 or cols.size < 2:
            continue
        ink = Image.fromarray(images[i, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].astype(np.float32), "F")
        out[i] = 0
        start = (side - box) // 2
        out[i, start : start + box, start : start + box] = np.asarray(ink.resize((box, box), Image.Resampling.BILINEAR))
    return out


def _blurred(images: np.ndarray, chosen: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The chosen images down to a few pixels across and back up, smoothly; the brightest back at 255."""
    if not chosen.any():
        return images
    ndimage = _ndimage()
    side = images.shape[1]
    small = int(rng.integers(7, 15))
    shrunk = ndimage.zoom(images[chosen], (1, small / side, small / side), order=1)
    grown = ndimage.zoom(shrunk, (1, side / shrunk.shape[1], side / shrunk.shape[2]), order=3)
    peak = grown.reshape(len(grown), -1).max(axis=1)[:, None, None]
    out: np.ndarray = images.copy()
    out[chosen] = grown * (255.0 / np.maximum(peak, 1e-6))
    return out


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
    "pen": Distortion(
        max_shift=2.0,
        max_rotation_deg=12.0,
        max_scale=0.12,
        max_shear=0.15,
        elastic_alpha=20.0,
        elastic_sigma=4.0,
        pen_widths=True,
        stretched=0.1,
        low_resolution=0.1,
    ),
}
