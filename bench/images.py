"""`python -m bench.images`: digit images as people make them, through `POST /predict`, and what reading them costs.

Robustness: official test digits are rendered the ways people produce digit images (scaled up with
smoothing, dark ink on light paper, off-centre and at various scales in a bigger frame, RGBA with a
transparent background, JPEG) and sent to a real server as image files, with `preprocess=auto`. Each
rendering's accuracy is reported against the same digits sent as their original 28x28 PNGs.

Cost: the server's preprocessing (decode, grey, polarity, crop, scale, centre) timed in this process,
per image, for PNGs of 28x28, 280x280 and 2000x2000 pixels.

Both tables go into docs/robustness.md; the cost table also into BENCHMARKS.md, between markers.
"""

import argparse
import io
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.lineup import ours
from bench.loads import IMAGE, Load
from bench.process import running

ROOT = Path(__file__).resolve().parents[1]
Render = Callable[[np.ndarray, np.random.Generator], tuple[bytes, str]]
BEGIN, END = "<!-- images:begin -->", "<!-- images:end -->"
PEOPLE_SECTION = "\n## What people make"


def _png(image: Image.Image) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue(), "image/png"


def _jpeg(image: Image.Image) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue(), "image/jpeg"


def _digit(pixels: np.ndarray, side: int) -> Image.Image:
    """The 28x28 digit scaled to side x side with bicubic smoothing, white ink on black."""
    return Image.fromarray(pixels.reshape(28, 28).astype(np.uint8), "L").resize((side, side), Image.Resampling.BICUBIC)


def _framed(pixels: np.ndarray, rng: np.random.Generator, *, frame: int = 500) -> tuple[Image.Image, np.ndarray]:
    """The digit at a random scale (30-80% of the frame) and a random place: grey ink mask, and the frame."""
    side = int(rng.integers(int(frame * 0.3), int(frame * 0.8)))
    ink = np.zeros((frame, frame), np.uint8)
    top, left = (int(v) for v in rng.integers(0, frame - side, 2))
    ink[top : top + side, left : left + side] = np.asarray(_digit(pixels, side))
    return Image.fromarray(ink, "L"), ink


RENDERINGS: dict[str, Render] = {
    "original 28x28 PNG": lambda p, rng: _png(_digit(p, 28)),
    "100x100, smoothed": lambda p, rng: _png(_digit(p, 100)),
    "280x280, smoothed": lambda p, rng: _png(_digit(p, 280)),
    "1000x1000, smoothed": lambda p, rng: _png(_digit(p, 1000)),
    "280x280, dark ink on white": lambda p, rng: _png(Image.fromarray(255 - np.asarray(_digit(p, 280)))),
    "500x500, off-centre, random scale, dark on white": lambda p, rng: _png(
        Image.fromarray(255 - np.asarray(_framed(p, rng)[0]))
    ),
    "500x500 RGBA, dark ink, transparent background": lambda p, rng: _png(_rgba(_framed(p, rng)[1])),
    "500x500 JPEG, off-centre, dark on white": lambda p, rng: _jpeg(
        Image.fromarray(255 - np.asarray(_framed(p, rng)[0]))
    ),
}


def _rgba(ink: np.ndarray) -> Image.Image:
    rgba = np.zeros((*ink.shape, 4), np.uint8)
    rgba[..., :3] = 20  # near-black ink
    rgba[..., 3] = ink  # opaque where the ink is, transparent elsewhere
    return Image.fromarray(rgba, "RGBA")


def robustness(url: str, x: np.ndarray, y: np.ndarray) -> list[tuple[str, float]]:
    """Accuracy of each rendering of the digits x (labels y), sent one file per request."""
    results = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for name, render in RENDERINGS.items():
            rng = np.random.default_rng(0)
            right = 0
            for pixels, label in zip(x, y, strict=True):
                body, media_type = render(pixels, rng)
                response = client.post("/predict?preprocess=auto", content=body, headers={"content-type": media_type})
                response.raise_for_status()
                right += response.json()["predictions"][0]["digit"] == label
            results.append((name, right / len(y)))
            print(f"{name}: {right / len(y):.4f}", flush=True)
    return results


def cost(repeats: int) -> list[tuple[int, float, float]]:
    """(side, median ms, p90 ms) of service.inputs.images.pixels_from_image on a PNG of a digit."""
    from service.inputs.images import Preprocess, pixels_from_image

    digit = np.zeros(784, np.float32)
    digit.reshape(28, 28)[6:22, 12:16] = 255  # a thick "1"
    rows = []
    for side in (28, 280, 2000):
        body, _ = _png(Image.fromarray(255 - np.asarray(_digit(digit, side))))
        times = []
        for _ in range(repeats if side < 2000 else max(5, repeats // 10)):
            started = time.perf_counter()
            pixels_from_image(body, Preprocess.MNIST, max_pixels=16_000_000)
            times.append((time.perf_counter() - started) * 1000)
        rows.append((side, statistics.median(times), float(np.percentile(times, 90))))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.images", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("MNIST_DATA", "auto"), help="as mnist-train's --data")
    parser.add_argument("--digits", type=int, default=1000, help="test digits per rendering (default 1000)")
    parser.add_argument("--repeats", type=int, default=200, help="timed runs per size for the cost table")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "robustness.md", help="the report")
    parser.add_argument("--benchmarks", type=Path, default=ROOT / "BENCHMARKS.md", help="gets the cost table")
    args = parser.parse_args()

    from training.data import load_source

    source = load_source(args.data)
    test = source.test if source.test is not None else source.train
    x, y = test.x[: args.digits], test.y[: args.digits]
    with _server() as url:
        accuracies = robustness(url, x, y)
    costs = cost(args.repeats)
    command = f"python -m bench.images --data {args.data} --digits {args.digits}"
    cost_table = [
        "| image | median | p90 |",
        "|---|---|---|",
        *[f"| {side}x{side} PNG | {median:.2f} ms | {p90:.2f} ms |" for side, median, p90 in costs],
    ]
    old = args.out.read_text() if args.out.exists() else ""
    kept = old[old.index(PEOPLE_SECTION) :] if PEOPLE_SECTION in old else ""  # `python -m bench.people`'s
    args.out.write_text(_report(accuracies, cost_table, source.name, len(y), command) + kept)
    _between_markers(args.benchmarks, [f"Preprocessing cost per image, `{command}`:", "", *cost_table])
    print(f"wrote {args.out} and the cost table into {args.benchmarks}")
    return 0


def _report(accuracies: list[tuple[str, float]], cost_table: list[str], source: str, n: int, command: str) -> str:
    baseline = accuracies[0][1]
    rows = [f"| {name} | {a * 100:.1f}% | {(a - baseline) * 100:+.1f} |" for name, a in accuracies]
    return "\n".join(
        [
            "# Any digit image in: robustness and cost",
            "",
            f"Generated by `{command}`: the first {n:,} test digits of {source}, each rendered as below and "
            "sent to a real server as an image file through `POST /predict?preprocess=auto` "
            "(`service/inputs/images.py` says what the preprocessing does). Random placement and scale are "
            "seeded. The goal: every rendering within 1 point of the original digits.",
            "",
            "| rendering | accuracy | points against the original |",
            "|---|---|---|",
            *rows,
            "",
            "## Cost of preprocessing, per image",
            "",
            "`pixels_from_image` with `preprocess=mnist`, in one process on this machine (2 cores):",
            "",
            *cost_table,
            "",
        ]
    )


def _between_markers(
    path: Path, lines: list[str], *, begin: str = BEGIN, end: str = END, title: str = "Image preprocessing"
) -> None:
    """`lines` between the markers in `path`, which gets a section with the markers first if it has none."""
    text = path.read_text() if path.exists() else ""
    if begin not in text:
        text = text.rstrip("\n") + f"\n\n## {title}\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    path.write_text(head + begin + "\n" + "\n".join(lines) + "\n" + end + rest.split(end, 1)[1])


@contextmanager
def _server(env: dict[str, str] | None = None) -> Iterator[str]:
    """`python -m service` on a free port, for the length of a `with`: its URL."""
    image = Load.http("/predict", {"image": IMAGE})
    with running(ours("images", image), env={"MNIST_GRPC_ENABLED": "false", **(env or {})}) as live:
        yield live.url


if __name__ == "__main__":
    raise SystemExit(main())
