"""The article's claims, each one object: the cells it reads, its verdict rule, and its report section."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.experiments import plots
from training.experiments.grid import Grid
from training.experiments.measure import Measurements
from training.experiments.rules import better, diverged, epochs_to, fmt, loss_spikes, verdict

Judge = Callable[[Measurements], tuple[str, str]]  # (verdict, evidence)
SMALL_BATCH = 32  # the article: "batch sizes of at least 32"


@dataclass(frozen=True)
class Finding:
    """A section of the report with its figure; it judges a claim of the article when it has one."""

    number: str
    title: str
    figure: str
    draw: plots.Draw
    method: Callable[[Grid], str]
    claim: str = ""
    judge: Judge | None = None
    table: Callable[[Measurements], list[str]] | None = None


@dataclass(frozen=True)
class Verdict:
    claim: str
    verdict: str  # "supported", "not supported" or "mixed"
    evidence: str


def convergence(m: Measurements) -> tuple[str, str]:
    bn, plain = m.runs("curves", "bn"), m.runs("curves", "plain")
    speed = [(t, epochs_to(bn, t), epochs_to(plain, t)) for t in (0.90, 0.95)]
    evidence = "; ".join(f"epochs to {t:.0%}: BN {fmt(b, 1)}, no BN {fmt(p, 1)}" for t, b, p in speed)
    return verdict([better(p, b, floor=0.5) for _, b, p in speed]), evidence  # fewer epochs is better


def learning_rates(m: Measurements) -> tuple[str, str]:
    rates = m.values("learning_rates")

    def lost_at_highest(arm: str) -> list[float]:
        best = max(np.mean(m.accuracies("learning_rates", arm, x)) for x in rates)
        return [float(best - a) for a in m.accuracies("learning_rates", arm, rates[-1])]

    def trouble(arm: str, name: str) -> str:
        runs = [r for x in rates for r in m.runs("learning_rates", arm, x)]
        return (
            f"{name} diverged in {sum(map(diverged, runs))} of {len(runs)} runs with "
            f"{sum(map(loss_spikes, runs))} loss spikes"
        )

    bn, plain = lost_at_highest("bn"), lost_at_highest("plain")
    detail = "; ".join(
        f"lr {x:g}: BN {fmt(m.accuracies('learning_rates', 'bn', x))}%, "
        f"no BN {fmt(m.accuracies('learning_rates', 'plain', x))}%"
        for x in rates
    )
    evidence = (
        f"accuracy lost from the best rate to {rates[-1]:g}: BN {fmt(bn)} points, no BN {fmt(plain)}; "
        f"{detail}; {trouble('bn', 'BN')}; {trouble('plain', 'no BN')}"
    )
    return verdict([better(plain, bn)]), evidence


def regularization(m: Measurements) -> tuple[str, str]:
    gap_bn, gap_plain = _gaps(m, "bn"), _gaps(m, "plain")
    return verdict([better(gap_plain, gap_bn)]), f"gap with BN {fmt(gap_bn)} points, without {fmt(gap_plain)} points"


def batch_sizes(m: Measurements) -> tuple[str, str]:
    sizes = m.values("batch_sizes")
    small, ok = [s for s in sizes if s < SMALL_BATCH], [s for s in sizes if s >= SMALL_BATCH]

    def lost_below_small(arm: str) -> float:
        def mean_over(group: list[float]) -> float:
            return float(np.mean([np.mean(m.accuracies("batch_sizes", arm, s)) for s in group]))

        return mean_over(ok) - mean_over(small)

    unstable = lost_below_small("bn") > 0.01 and lost_below_small("bn") > lost_below_small("plain")
    at_32 = m.accuracies("batch_sizes", "bn", SMALL_BATCH)
    larger = [better(m.accuracies("batch_sizes", "bn", s), at_32) for s in ok if s > SMALL_BATCH]
    scores = [1 if unstable else -1, max(larger, default=0) if min(larger, default=0) >= 0 else -1]
    evidence = (
        f"accuracy lost below batch {SMALL_BATCH}: BN {lost_below_small('bn') * 100:+.1f} points, "
        f"no BN {lost_below_small('plain') * 100:+.1f}; "
        + "; ".join(f"batch {s:g}: BN {fmt(m.accuracies('batch_sizes', 'bn', s))}%" for s in sizes)
    )
    return verdict(scores), evidence


def placement(m: Measurements) -> tuple[str, str]:
    rates = m.values("placement")
    scores = [better(m.accuracies("placement", "after", x), m.accuracies("placement", "before", x)) for x in rates]
    evidence = "; ".join(
        f"lr {x:g}: after {fmt(m.accuracies('placement', 'after', x))}%, "
        f"before {fmt(m.accuracies('placement', 'before', x))}%"
        for x in rates
    )
    return verdict(scores), evidence


def dropout_order(m: Measurements) -> tuple[str, str]:
    after, first = m.accuracies("dropout", "after_bn"), m.accuracies("dropout", "before_bn")
    return verdict([better(after, first)]), f"dropout after BN {fmt(after)}%, before BN {fmt(first)}%"


def running_averages(m: Measurements) -> tuple[str, str]:
    inf = m.inference
    evidence = (
        f"moving statistics {fmt(inf['inference'])}%; statistics of a batch of one "
        f"{fmt(inf['training_batch_of_one'])}%; of the whole test batch {fmt(inf['training_full_batch'])}%"
    )
    return verdict([better(inf["inference"], inf["training_batch_of_one"], floor=0.10)]), evidence


def momentum_table(m: Measurements) -> list[str]:
    epochs = len(next(iter(m.momentum.values()))[0])
    lines = [
        "| momentum | " + " | ".join(f"after epoch {i + 1}" for i in range(epochs)) + " |",
        "|---|" + "---|" * epochs,
    ]
    for value, curves in m.momentum.items():
        accuracy = np.array(curves)
        lines.append(f"| {value} | " + " | ".join(fmt(list(accuracy[:, i])) for i in range(epochs)) + " |")
    return lines


def _gaps(m: Measurements, arm: str) -> list[float]:
    return [r.train_accuracy - r.test_accuracy for r in m.runs("curves", arm)]


def _inference_groups(m: Measurements) -> dict[str, list[float]]:
    inf = m.inference
    return {
        "moving averages": inf["inference"],
        "batch of one": inf["training_batch_of_one"],
        "whole test batch": inf["training_full_batch"],
    }


FINDINGS = (
    Finding(
        "1",
        "Convergence",
        "bn_learning_curves.png",
        plots.learning_curves,
        lambda grid: (
            "Validation accuracy after every epoch. The verdict compares the first epoch at which the mean "
            "run reaches 90% and 95% (a run that never does counts as one epoch past the end)."
        ),
        claim="BN speeds up convergence",
        judge=convergence,
    ),
    Finding(
        "2",
        "Learning rates",
        "bn_learning_rates.png",
        plots.sweep("learning_rates", "Final accuracy by learning rate", "Adam learning rate"),
        lambda grid: (
            f"Final test accuracy at Adam learning rates {', '.join(map(str, grid.learning_rates))}. "
            "Supported if BN is at least as good at every rate and better at the highest."
        ),
        claim="BN tolerates higher learning rates",
        judge=learning_rates,
    ),
    Finding(
        "3",
        "Regularization",
        "bn_regularization.png",
        plots.bars(
            "Train minus test accuracy", lambda m: {arm: _gaps(m, arm) for arm in ("bn", "plain")}, "gap (points)"
        ),
        lambda grid: "Training accuracy (inference mode, on the training digits) minus test accuracy.",
        claim="BN regularizes (smaller train/test gap)",
        judge=regularization,
    ),
    Finding(
        "4",
        "Mini-batch size",
        "bn_batch_sizes.png",
        plots.sweep("batch_sizes", "Final accuracy by mini-batch size", "batch size"),
        lambda grid: (
            f"{grid.small_batch_epochs} epochs at each batch size, so small batches take more steps. "
            "Supported if BN loses more than one point below 32 and more than the no-BN control does, and 64-128 are "
            "no worse than 32."
        ),
        claim="Small mini-batches make BN unstable; 32 is a start, 64-128 often better",
        judge=batch_sizes,
    ),
    Finding(
        "5",
        "Placement",
        "bn_placement.png",
        plots.bars(
            "BN after vs before the ReLU",
            lambda m: {
                f"{arm}, lr {x:g}": m.accuracies("placement", arm, x)
                for x in m.values("placement")
                for arm in ("after", "before")
            },
            "test accuracy (%)",
        ),
        lambda grid: (
            "`Dense → ReLU → BN` (the article) against `Dense → BN → ReLU` (the original BN paper), at two "
            "learning rates."
        ),
        claim="BN after the activation beats BN before it",
        judge=placement,
    ),
    Finding(
        "6",
        "Dropout order",
        "bn_dropout_order.png",
        plots.bars(
            "Dropout 0.3 after vs before BN",
            lambda m: {arm.replace("_", " "): m.accuracies("dropout", arm) for arm in ("after_bn", "before_bn")},
            "test accuracy (%)",
        ),
        lambda grid: "Dropout 0.3 after BN against dropout before BN.",
        claim="Dropout belongs after BN, not before it",
        judge=dropout_order,
    ),
    Finding(
        "7",
        "Running averages at inference",
        "bn_inference_mode.png",
        plots.bars("Test accuracy by the statistics BN normalizes with", _inference_groups, "test accuracy (%)"),
        lambda grid: (
            f"{grid.one_by_one} test digits (evenly spaced, all classes) through the same trained networks: "
            "with the moving averages (inference mode), one digit at a time with its own statistics (training mode), "
            "and all at once with the batch's statistics."
        ),
        claim="Inference must use the running averages",
        judge=running_averages,
    ),
    Finding(
        "7b",
        "Momentum of the moving averages",
        "bn_momentum.png",
        plots.momentum,
        lambda grid: (
            "Inference-mode test accuracy of a network exported after each early epoch, by BN momentum. The "
            "moving averages start at mean 0 and variance 1; with momentum 0.999 they have moved only 1 - 0.999^steps "
            "of the way after a few hundred steps, so an early export normalizes with statistics that are still mostly "
            "the initial ones."
        ),
        table=momentum_table,
    ),
)


def verdicts(m: Measurements) -> list[Verdict]:
    found = []
    for finding in FINDINGS:
        if finding.judge is not None:
            result, evidence = finding.judge(m)
            found.append(Verdict(f"{finding.number}. {finding.claim}", result, evidence))
    return found
