"""`python -m training experiments`: the reference article's claims about batch normalization, measured.

Every cell trains real networks through `training.train.run` over several seeds (`measure`); every
claim is an object with its cells, its verdict rule and its report section (`claims`); the plots
(`plots`) and the Markdown report (`report`) are drawn from the same measurements.
"""

from training.experiments.runner import ExperimentOptions, run_experiments

__all__ = ["ExperimentOptions", "run_experiments"]
