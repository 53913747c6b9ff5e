"""Digits and non-digits drawn with a pen, as a person draws them on the page: a held-out test set.

Each glyph is a few strokes in a unit box (x to the right, y down). A drawing places it on a 280x280
transparent canvas, as the page's is, at a random size, place, slant and rotation, wobbles every point
a little, and draws each stroke with a round pen of a random width in the page's range (9 to 27 px).

NOTE: nothing in training/ reads these shapes or this pen; the training negatives are font glyphs and
random curves (training/negatives.py). So these sets measure what the model was never tuned on.
"""

import io
import math
from collections.abc import Iterator

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 280
INK = (17, 17, 17, 255)  # the page's #111
PEN_WIDTHS = (9.0, 27.0)  # the page's 18 px, times a pen's pressure from 0.5 to 1.5

Point = tuple[float, float]
Stroke = list[Point]


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, steps: int = 16) -> Stroke:
    """Points along an ellipse, angles in degrees, clockwise on screen (y points down)."""
    return [
        (cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
        for a in np.linspace(start, end, steps)
    ]


DIGITS: dict[int, list[list[Stroke]]] = {
    0: [[arc(0.5, 0.5, 0.3, 0.45, -90, 270)], [arc(0.5, 0.5, 0.28, 0.45, -80, 290)]],
    1: [
        [[(0.5, 0.05), (0.5, 0.95)]],
        [[(0.3, 0.25), (0.5, 0.05), (0.5, 0.95)]],
        [[(0.32, 0.22), (0.52, 0.05), (0.5, 0.95)], [(0.3, 0.95), (0.72, 0.95)]],
    ],
    2: [
        [[*arc(0.5, 0.3, 0.28, 0.25, 200, 380), (0.2, 0.95), (0.82, 0.95)]],
        [[*arc(0.5, 0.32, 0.3, 0.27, 190, 370), (0.35, 0.8), (0.2, 0.95), (0.85, 0.92)]],
    ],
    3: [
        [arc(0.5, 0.28, 0.27, 0.23, 210, 450), arc(0.5, 0.73, 0.3, 0.24, 270, 510)],
        [[*arc(0.5, 0.28, 0.27, 0.23, 210, 440), *arc(0.5, 0.73, 0.3, 0.24, 280, 510)]],
    ],
    4: [
        [[(0.65, 0.95), (0.65, 0.05), (0.15, 0.65), (0.85, 0.65)]],
        [[(0.35, 0.05), (0.2, 0.6), (0.85, 0.6)], [(0.65, 0.3), (0.65, 0.95)]],
    ],
    5: [
        [[(0.75, 0.05), (0.3, 0.05), (0.25, 0.45)], arc(0.5, 0.68, 0.28, 0.27, 235, 500)],
        [[(0.3, 0.05), (0.25, 0.45), *arc(0.5, 0.68, 0.28, 0.27, 235, 500)], [(0.3, 0.05), (0.78, 0.06)]],
    ],
    6: [
        [[(0.72, 0.08), (0.45, 0.2), (0.3, 0.45), *arc(0.5, 0.7, 0.25, 0.25, 180, 540)]],
        [[(0.65, 0.05), (0.35, 0.35), *arc(0.5, 0.7, 0.24, 0.25, 200, 560)]],
    ],
    7: [
        [[(0.2, 0.08), (0.8, 0.08), (0.4, 0.95)]],
        [[(0.2, 0.08), (0.8, 0.08), (0.45, 0.95)], [(0.35, 0.5), (0.75, 0.5)]],
    ],
    8: [
        [arc(0.5, 0.27, 0.22, 0.22, 90, 450), arc(0.5, 0.72, 0.27, 0.25, -90, 270)],
        [
            [
                *arc(0.5, 0.27, 0.22, 0.22, 90, 360),
                *arc(0.5, 0.72, 0.27, 0.25, -90, 270),
                *arc(0.5, 0.27, 0.22, 0.22, 0, 90),
            ]
        ],
    ],
    9: [
        [arc(0.5, 0.3, 0.25, 0.23, 0, 360), [(0.75, 0.3), (0.7, 0.95)]],
        [[*arc(0.5, 0.3, 0.25, 0.23, 10, 370), (0.72, 0.6), (0.6, 0.9), (0.35, 0.95)]],
    ],
}

# Letters that do not read as digits (no O, I, l, Z, S, B, G, T, g, q, b) and symbols, each one way.
NON_DIGITS: dict[str, list[Stroke]] = {
    "A": [[(0.15, 0.95), (0.5, 0.05), (0.85, 0.95)], [(0.3, 0.6), (0.7, 0.6)]],
    "C": [arc(0.55, 0.5, 0.35, 0.45, 300, 60)],
    "E": [[(0.75, 0.05), (0.25, 0.05), (0.25, 0.95), (0.75, 0.95)], [(0.25, 0.5), (0.65, 0.5)]],
    "F": [[(0.75, 0.05), (0.25, 0.05), (0.25, 0.95)], [(0.25, 0.5), (0.65, 0.5)]],
    "H": [[(0.2, 0.05), (0.2, 0.95)], [(0.8, 0.05), (0.8, 0.95)], [(0.2, 0.5), (0.8, 0.5)]],
    "K": [[(0.25, 0.05), (0.25, 0.95)], [(0.8, 0.05), (0.25, 0.55)], [(0.4, 0.42), (0.8, 0.95)]],
    "M": [[(0.1, 0.95), (0.2, 0.05), (0.5, 0.7), (0.8, 0.05), (0.9, 0.95)]],
    "N": [[(0.2, 0.95), (0.2, 0.05), (0.8, 0.95), (0.8, 0.05)]],
    "P": [[(0.25, 0.95), (0.25, 0.05), *arc(0.45, 0.28, 0.3, 0.23, 270, 450), (0.25, 0.51)]],
    "R": [
        [(0.25, 0.95), (0.25, 0.05), *arc(0.45, 0.28, 0.3, 0.23, 270, 450), (0.25, 0.51)],
        [(0.45, 0.5), (0.8, 0.95)],
    ],
    "U": [[(0.2, 0.05), *arc(0.5, 0.6, 0.3, 0.35, 180, 0), (0.8, 0.05)]],
    "V": [[(0.15, 0.05), (0.5, 0.95), (0.85, 0.05)]],
    "W": [[(0.05, 0.05), (0.27, 0.95), (0.5, 0.3), (0.73, 0.95), (0.95, 0.05)]],
    "X": [[(0.15, 0.05), (0.85, 0.95)], [(0.85, 0.05), (0.15, 0.95)]],
    "Y": [[(0.15, 0.05), (0.5, 0.5), (0.85, 0.05)], [(0.5, 0.5), (0.5, 0.95)]],
    "h": [[(0.25, 0.05), (0.25, 0.95)], [(0.25, 0.65), *arc(0.5, 0.65, 0.25, 0.2, 180, 360), (0.75, 0.95)]],
    "m": [
        [(0.1, 0.95), (0.1, 0.45), *arc(0.3, 0.55, 0.2, 0.12, 180, 360), (0.5, 0.95)],
        [(0.5, 0.55), *arc(0.7, 0.55, 0.2, 0.12, 180, 360), (0.9, 0.95)],
    ],
    "n": [[(0.25, 0.95), (0.25, 0.4), *arc(0.5, 0.55, 0.25, 0.15, 180, 360), (0.75, 0.95)]],
    "r": [[(0.35, 0.95), (0.35, 0.4)], [(0.35, 0.6), *arc(0.55, 0.55, 0.2, 0.12, 180, 300)]],
    "w": [[(0.1, 0.4), (0.3, 0.95), (0.5, 0.55), (0.7, 0.95), (0.9, 0.4)]],
    "+": [[(0.5, 0.15), (0.5, 0.85)], [(0.15, 0.5), (0.85, 0.5)]],
    "=": [[(0.15, 0.35), (0.85, 0.35)], [(0.15, 0.65), (0.85, 0.65)]],
    "#": [[(0.35, 0.1), (0.3, 0.9)], [(0.7, 0.1), (0.65, 0.9)], [(0.1, 0.35), (0.9, 0.35)], [(0.1, 0.65), (0.9, 0.65)]],
    "*": [[(0.5, 0.1), (0.5, 0.9)], [(0.15, 0.3), (0.85, 0.7)], [(0.85, 0.3), (0.15, 0.7)]],
    "?": [[*arc(0.5, 0.28, 0.25, 0.22, 190, 420), (0.5, 0.65)], [(0.5, 0.9), (0.5, 0.92)]],
    "!": [[(0.5, 0.05), (0.5, 0.68)], [(0.5, 0.9), (0.5, 0.92)]],
    "%": [arc(0.25, 0.2, 0.13, 0.13, 0, 360), [(0.85, 0.05), (0.15, 0.95)], arc(0.75, 0.8, 0.13, 0.13, 0, 360)],
    "smiley": [
        arc(0.5, 0.5, 0.45, 0.45, 0, 360),
        [(0.35, 0.35), (0.35, 0.37)],
        [(0.65, 0.35), (0.65, 0.37)],
        arc(0.5, 0.55, 0.25, 0.2, 20, 160),
    ],
    "star": [[(0.5, 0.05), (0.78, 0.95), (0.05, 0.38), (0.95, 0.38), (0.22, 0.95), (0.5, 0.05)]],
    "zigzag": [[(0.05 + 0.9 * i / 7, 0.25 if i % 2 else 0.75) for i in range(8)]],
    "tick": [[(0.1, 0.55), (0.4, 0.9), (0.9, 0.1)]],
}


def draw(strokes: list[Stroke], rng: np.random.Generator) -> bytes:
    """The glyph drawn once with a pen, as the page's canvas would send it: a PNG, dark ink, transparent."""
    canvas = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    pen = ImageDraw.Draw(canvas)
    width = float(rng.uniform(*PEN_WIDTHS))
    for stroke in _placed(strokes, rng):
        pen.line(stroke, fill=INK, width=round(width), joint="curve")
        for x, y in (stroke[0], stroke[-1]):  # round caps, as the page's lineCap
            pen.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=INK)
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG")
    return buffer.getvalue()


def drawings(glyphs: list[list[Stroke]], count: int, seed: int) -> Iterator[bytes]:
    """`count` drawings, taking the glyph's variants in turn."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        yield draw(glyphs[i % len(glyphs)], rng)


def _placed(strokes: list[Stroke], rng: np.random.Generator) -> list[Stroke]:
    """The strokes at a random size, aspect, slant, rotation and place on the canvas, bent by a smooth random
    warp, each stroke a little off where it should start, and each point wobbled: a hand is not a ruler."""
    height = rng.uniform(0.4, 0.85) * CANVAS
    width = height * rng.uniform(0.4, 0.95)
    angle = math.radians(rng.uniform(-18, 18))
    shear = rng.uniform(-0.35, 0.35)
    centre = rng.uniform(0.5 * height, CANVAS - 0.5 * height, 2)
    bend = rng.normal(0, 0.06, (2, 3))  # a quadratic warp of x and y in the unit box
    cos, sin = math.cos(angle), math.sin(angle)
    placed = []
    for stroke in strokes:
        points = np.asarray(stroke, np.float64) - 0.5
        u, v = points[:, 0], points[:, 1]
        points[:, 0] += bend[0, 0] * v * v + bend[0, 1] * u * v + bend[0, 2] * v
        points[:, 1] += bend[1, 0] * u * u + bend[1, 1] * u * v + bend[1, 2] * u
        points += rng.normal(0, 0.025, 2) + rng.normal(0, 0.012, points.shape)
        x = (points[:, 0] + shear * points[:, 1]) * width
        y = points[:, 1] * height
        placed.append(
            [(centre[0] + cos * a - sin * b, centre[1] + sin * a + cos * b) for a, b in zip(x, y, strict=True)]
        )
    return placed
