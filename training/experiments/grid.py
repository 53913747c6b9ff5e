"""What is measured: the grids (full and quick) and the networks each experiment compares."""

from dataclasses import dataclass, replace

from training.networks import NETWORKS, Network


@dataclass(frozen=True)
class Grid:
    name: str
    seeds: tuple[int, ...]
    epochs: int
    learning_rates: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    small_batch_epochs: int
    per_class: int | None  # training digits per class to use; None: all of them
    one_by_one: int  # test digits pushed through one at a time in training mode


GRIDS = {
    # 1,500 digits of each class: the most that keeps the full grid within about 45 minutes on 2 cores
    "full": Grid("full", (0, 1, 2), 20, (0.001, 0.01, 0.1), (4, 8, 32, 64, 128), 10, 1_500, 300),
    "quick": Grid("quick", (0,), 3, (0.001, 0.1), (8, 32, 128), 2, 60, 50),
}
BN_NET = NETWORKS["bn-256-128"]
PLAIN_NET = NETWORKS["plain-256-128"]
BN_BEFORE_RELU = replace(BN_NET, name="bn-256-128-before", bn="before")
DROPOUT_BEFORE_BN = replace(BN_NET, name="bn-256-128-dropout-first", dropout_order="before_bn")
WITH_AND_WITHOUT_BN: dict[str, Network] = {"bn": BN_NET, "plain": PLAIN_NET}
PLACEMENT_RATES = (0.001, 0.01)
PLACEMENTS: dict[str, Network] = {"after": BN_NET, "before": BN_BEFORE_RELU}
DROPOUT_RATE = 0.3
DROPOUT_ORDERS: dict[str, Network] = {"after_bn": BN_NET, "before_bn": DROPOUT_BEFORE_BN}
MOMENTUMS = (0.9, 0.99, 0.999)
