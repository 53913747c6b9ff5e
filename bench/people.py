"""`python -m bench.people`: digits and non-digits as people make them, read by a real server, version by version.

Every set is sent as image files through `POST /predict?preprocess=auto`, as the draw-a-digit page and
an upload do, to each version asked for:

- pen-drawn digits and pen-drawn non-digits (letters that do not read as digits, symbols, doodles),
  from the stroke alphabet in bench/strokes.py, which nothing in training/ sees;
- the UCI handwritten digits that scikit-learn ships (1,797 of them, 8x8, scaled up with smoothing);
- digits printed in fonts that training never renders (this machine's Liberation family), dark on
  white, at random sizes and places;
- and a blank image, as 784 zeros over JSON.

For each set and version: accuracy, the share marked `confident`, the accuracy of those, and for
non-digits the share marked not confident. The table goes into docs/robustness.md between markers.
"""

import argparse
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench import strokes
from bench.images import _between_markers, _server

ROOT = Path(__file__).resolve().parents[1]
FONT_DIRS = (Path("/usr/share/fonts/truetype/liberation"),)
BEGIN, END = "<!-- people:begin -->", "<!-- people:end -->"

Sample = tuple[bytes, str, int | None]  # (body, media type, the digit, or None for a non-digit)


@dataclass(frozen=True)
class Outcome:
    digits: int  # how many of the set are digits
    right: int
    confident: int
    confident_right: int
    answers: int

    def row(self) -> str:
        if self.digits == 0:  # a set of non-digits: the share turned away is what counts
            turned_away = 1 - self.confident / self.answers
            return f"| – | {_share(self.confident, self.answers)} | – | **{turned_away * 100:.1f}%** |"
        return (
            f"| {_share(self.right, self.digits)} | {_share(self.confident, self.answers)} | "
            f"{_share(self.confident_right, self.confident)} | – |"
        )


def _share(part: int, whole: int) -> str:
    return f"{part / whole * 100:.1f}%" if whole else "–"


def pen_digits(per_digit: int) -> Iterator[Sample]:
    for digit, glyphs in strokes.DIGITS.items():
        for body in strokes.drawings(glyphs, per_digit, seed=100 + digit):
            yield body, "image/png", digit


def pen_non_digits(per_shape: int) -> Iterator[Sample]:
    for i, glyph in enumerate(strokes.NON_DIGITS.values()):
        for body in strokes.drawings([glyph], per_shape, seed=200 + i):
            yield body, "image/png", None


def uci_digits() -> Iterator[Sample]:
    from sklearn.datasets import load_digits

    data = load_digits()
    for image, label in zip(data.images, data.target, strict=True):
        ink = Image.fromarray((image * (255 / 16)).astype(np.uint8), "L").resize((64, 64), Image.Resampling.BICUBIC)
        yield _png(ink), "image/png", int(label)


def printed_digits(per_digit: int) -> Iterator[Sample]:
    fonts = sorted(p for d in FONT_DIRS if d.is_dir() for p in d.glob("*.ttf"))
    rng = np.random.default_rng(7)
    for path in fonts:
        for digit in range(10):
            for _ in range(per_digit):
                size = int(rng.integers(40, 160))
                page = Image.new("L", (240, 240), 255)
                font = ImageFont.truetype(str(path), size)
                place = rng.integers(10, 240 - size, 2)
                ImageDraw.Draw(page).text((int(place[0]), int(place[1])), str(digit), fill=20, font=font)
                yield _png(page), "image/png", digit


def blank() -> Iterator[Sample]:
    yield b'{"image": [' + b",".join([b"0"] * 784) + b"]}", "application/json", None


def measure(client: httpx.Client, samples: Iterator[Sample], version: int) -> Outcome:
    digits = right = confident = confident_right = answers = 0
    for body, media_type, label in samples:
        if media_type == "application/json":
            answer = client.post("/predict", json={**json.loads(body), "version": version})
        else:
            path = f"/predict?preprocess=auto&version={version}"
            answer = client.post(path, content=body, headers={"content-type": media_type})
        answer.raise_for_status()
        prediction = answer.json()["predictions"][0]
        sure = prediction.get("confident")
        answers += 1
        confident += sure is not False  # a version without the flag claims every answer
        if label is not None:
            digits += 1
            right += prediction["digit"] == label
            confident_right += (sure is not False) and prediction["digit"] == label
    return Outcome(digits, right, confident, confident_right, answers)


def sets(scale: float) -> dict[str, Iterator[Sample]]:
    return {
        "pen-drawn digits (bench/strokes.py)": pen_digits(max(1, int(100 * scale))),
        "pen-drawn non-digits: letters, symbols, doodles": pen_non_digits(max(1, int(20 * scale))),
        "UCI handwritten digits (scikit-learn, 8x8)": uci_digits(),
        "printed digits, held-out fonts (Liberation)": printed_digits(max(1, int(3 * scale))),
        "blank image, 784 zeros (JSON)": blank(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.people", description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, nargs="+", help="versions of models/mnist to compare (default: all)")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each drawn set (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "robustness.md", help="the report")
    args = parser.parse_args()
    versions = args.versions or sorted(int(p.name) for p in (ROOT / "models" / "mnist").iterdir() if p.name.isdigit())
    lines = [
        "| set | version | accuracy | confident | accuracy when confident | turned away |",
        "|---|---|---|---|---|---|",
    ]
    with (
        _server({"MNIST_VERSIONS_TO_KEEP": str(len(versions))}) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        for name, samples in sets(args.scale).items():
            cached = list(samples)
            for version in versions:
                outcome = measure(client, iter(cached), version)
                lines.append(f"| {name} ({outcome.answers:,}) | {version} {outcome.row()}")
                print(lines[-1], flush=True)
    command = "python -m bench.people" + (f" --scale {args.scale:g}" if args.scale != 1 else "")
    note = (
        "A version without the `confident` flag (version 2) is counted as sure of every answer: nothing it "
        "says turns an answer away."
    )
    _between_markers(args.out, [f"`{command}`:", "", *lines, "", note], begin=BEGIN, end=END, title="What people make")
    print(f"wrote the table into {args.out}")
    return 0


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    raise SystemExit(main())
