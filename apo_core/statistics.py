"""Statistics of evaluation outcomes, as pure functions (DEVELOPERS.md, "How to measure learning").

* :func:`wilson_interval` — one policy's success rate p̂ = s/n with the Wilson score
  interval (p̂ + z²/2n ± z·sqrt(p̂(1-p̂)/n + z²/4n²)) / (1 + z²/n).
* :func:`paired_difference` — two policies played on the SAME seeds. Only the discordant
  pairs carry information about the difference: b = seeds the candidate solves and the
  champion does not, c = the reverse, m = b + c. Then

      Δ = (b - c) / n,

  and, conditional on m, b ~ Binomial(m, π) with Δ = (2π - 1)·m/n. The 95% interval is the
  exact (Clopper-Pearson) interval [π_lo, π_hi] for π mapped through that line, and the
  p-value is the exact McNemar test (two-sided binomial test of π = 1/2). Exact, with no
  randomness, so the promote gate is reproducible; with m = 0 the interval is [0, 0] and
  p = 1 (nothing distinguishes the two policies on these seeds).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import binomtest


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z = 1.96)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class PairedComparison:
    """Candidate minus champion on the same n seeds (success rates, so Δ ∈ [-1, 1])."""

    n: int
    wins: int  # b: candidate succeeds, champion fails
    losses: int  # c: champion succeeds, candidate fails
    difference: float
    ci95_low: float
    ci95_high: float
    p_value: float

    @property
    def significantly_better(self) -> bool:
        return self.ci95_low > 0

    @property
    def significantly_worse(self) -> bool:
        return self.ci95_high < 0

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (f"{self.difference:+.1%} [{self.ci95_low:+.1%}, {self.ci95_high:+.1%}] on {self.n} paired seeds "
                f"(+{self.wins} / -{self.losses}, McNemar p={self.p_value:.3g})")


def paired_difference(candidate: np.ndarray, champion: np.ndarray, confidence: float = 0.95) -> PairedComparison:
    """Exact paired difference of two success vectors aligned by seed (see the module doc)."""
    candidate, champion = np.asarray(candidate, dtype=bool), np.asarray(champion, dtype=bool)
    if candidate.shape != champion.shape or candidate.ndim != 1:
        raise ValueError(f"paired outcomes must be two 1-D vectors of equal length, got {candidate.shape} and {champion.shape}")
    n = len(candidate)
    if n == 0:
        raise ValueError("paired_difference needs at least one paired seed")
    wins = int(np.sum(candidate & ~champion))
    losses = int(np.sum(champion & ~candidate))
    discordant = wins + losses
    if discordant == 0:
        return PairedComparison(n, 0, 0, 0.0, 0.0, 0.0, 1.0)
    test = binomtest(wins, discordant, 0.5)
    interval = test.proportion_ci(confidence_level=confidence, method="exact")
    scale = discordant / n
    return PairedComparison(
        n=n, wins=wins, losses=losses, difference=(wins - losses) / n,
        ci95_low=(2 * interval.low - 1) * scale, ci95_high=(2 * interval.high - 1) * scale,
        p_value=float(test.pvalue),
    )
