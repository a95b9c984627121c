"""The numbers an ablation report stands on: mean and spread over seeds, and paired differences with a
confidence interval, so a "winner" is named only when the interval excludes zero.

Runs of two variants with the same seed share the data order and augmentation, so the difference is taken
per seed (paired) and its 95 % interval is ``mean(d) +- t(0.975, n - 1) * sd(d) / sqrt(n)`` (Student's t;
the quantiles are tabulated below, so no SciPy is needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Student's t, two-sided 95 % (0.975 quantile), by degrees of freedom (textbook table).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(dof: int) -> float:
    """The 0.975 quantile of Student's t with ``dof`` degrees of freedom (the next smaller tabulated dof)."""
    if dof < 1:
        return math.nan
    return T975[max(k for k in T975 if k <= dof)] if dof <= 30 else 1.96


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``nan`` spread for one value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass(frozen=True)
class Paired:
    """A variant minus the reference, seed by seed: mean difference and its 95 % interval."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.n > 1 and (self.low > 0 or self.high < 0)

    def verdict(self, metric: str) -> str:
        """What the numbers allow saying, in words."""
        if self.n < 2:
            return "one seed: no interval, no verdict"
        if not self.significant:
            return f"no significant difference at {self.n} seeds"
        return f"{'better' if self.mean > 0 else 'worse'} {metric} than the reference (95 % interval excludes 0)"


def paired(values: Sequence[float], reference: Sequence[float]) -> Paired:
    """Paired difference ``values[i] - reference[i]`` (same seeds, same order)."""
    diffs = [a - b for a, b in zip(values, reference, strict=True) if not (math.isnan(a) or math.isnan(b))]
    mean, sd = mean_std(diffs)
    n = len(diffs)
    half = t975(n - 1) * sd / math.sqrt(n) if n > 1 else math.nan
    return Paired(mean, mean - half, mean + half, n)
