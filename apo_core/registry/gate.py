"""The promote gate: is a candidate round better than the champion, seed by seed?

Evaluation metrics carry every episode's outcome keyed by "task:seed" per suite
(:func:`summarise`). The gate pairs the candidate's outcomes with the champion's on the
same keys and decides from the paired difference (apo_core/statistics.py):

* refuse when any suite (unperturbed or perturbed), or any task within a suite, is
  significantly worse than ``-max_suite_regression``: the upper end of its paired 95%
  interval is below it (a candidate cannot trade one task for another);
* rule "significant" (default): promote when the lower end of the unperturbed paired
  95% interval is above ``margin``: the gain is real at the 5% level;
* rule "point": promote when the unperturbed paired gain itself is above ``margin``.

A first round (no champion) is always promoted. Records without per-seed outcomes, or
whose seeds do not match, are refused with :class:`GateInputError`: a gate that cannot
pair its evidence must not guess.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from apo_core.statistics import PairedComparison, paired_difference, wilson_interval

NO_PERTURBATION = "none"
PromoteRule = Literal["significant", "point"]


class GateInputError(ValueError):
    """The two evaluation records cannot be compared seed by seed."""


def summarise(rows: list[dict]) -> dict:
    """Gate metrics from evaluation rows: the unperturbed success rate (Wilson CI), one rate
    per perturbation suite, and every outcome by suite and "task:seed"."""
    plain = [r for r in rows if r["suite"] == NO_PERTURBATION] or rows
    successes, episodes = sum(r["successes"] for r in plain), sum(r["episodes"] for r in plain)
    low, high = wilson_interval(successes, episodes)
    outcomes: dict[str, dict[str, int]] = {}
    for r in rows:
        by_seed = outcomes.setdefault(r["suite"], {})
        for outcome in r.get("outcomes", []):
            by_seed[f"{r['task']}:{outcome['seed']}"] = int(outcome["success"])
    suites = {name: sum(by_seed.values()) / len(by_seed) for name, by_seed in outcomes.items()
              if name != NO_PERTURBATION and by_seed}
    return {"success_rate": successes / episodes if episodes else 0.0, "ci95_low": low, "ci95_high": high,
            "episodes": episodes, "suites": suites, "tasks": task_rates(outcomes.get(NO_PERTURBATION, {})),
            "outcomes": outcomes}


def _task(key: str) -> str:
    """The task of an outcome's "task:seed" key."""
    return key.rpartition(":")[0]


def task_rates(by_seed: dict[str, int]) -> dict[str, float]:
    """Success rate per task of one suite's outcomes."""
    tasks = sorted({_task(key) for key in by_seed})
    return {task: float(np.mean([v for k, v in by_seed.items() if _task(k) == task])) for task in tasks}


def paired_suites(candidate: dict, champion: dict) -> dict[str, PairedComparison]:
    """Candidate minus champion per suite, on the seeds both were evaluated on (all of them)."""
    for name, metrics in (("candidate", candidate), ("champion", champion)):
        if not metrics.get("outcomes"):
            raise GateInputError(f"the {name}'s evaluation record has no per-seed outcomes")
    comparisons = {}
    for suite, candidate_by_seed in candidate["outcomes"].items():
        champion_by_seed = champion["outcomes"].get(suite)
        if champion_by_seed is None:
            continue  # a suite the champion never saw cannot regress from it
        if set(candidate_by_seed) != set(champion_by_seed):
            missing = sorted(set(champion_by_seed) ^ set(candidate_by_seed))[:3]
            raise GateInputError(f"suite {suite!r}: the candidate and the champion were evaluated on different "
                                 f"seeds (e.g. {', '.join(missing)})")
        comparisons[suite] = _paired_on(sorted(candidate_by_seed), candidate_by_seed, champion_by_seed)
    if NO_PERTURBATION not in comparisons:
        raise GateInputError("no unperturbed outcomes shared by the candidate and the champion")
    return comparisons


def paired_tasks(candidate: dict, champion: dict) -> dict[tuple[str, str], PairedComparison]:
    """Candidate minus champion per (suite, task), for suites that hold more than one task
    (with one, it is the suite's own comparison). Call after :func:`paired_suites`."""
    comparisons = {}
    for suite, candidate_by_seed in candidate["outcomes"].items():
        champion_by_seed = champion["outcomes"].get(suite)
        tasks = sorted({_task(key) for key in candidate_by_seed})
        if champion_by_seed is None or len(tasks) < 2:
            continue
        for task in tasks:
            keys = sorted(k for k in candidate_by_seed if _task(k) == task)
            comparisons[suite, task] = _paired_on(keys, candidate_by_seed, champion_by_seed)
    return comparisons


def _paired_on(keys: list[str], candidate_by_seed: dict[str, int], champion_by_seed: dict[str, int]
               ) -> PairedComparison:
    """Candidate minus champion on the outcomes of ``keys`` ("task:seed")."""
    return paired_difference(np.array([candidate_by_seed[k] for k in keys]),
                             np.array([champion_by_seed[k] for k in keys]))


def promotion_decision(
    candidate: dict, champion: dict | None, *, rule: PromoteRule = "significant", margin: float = 0.0,
    max_suite_regression: float = 0.0,
) -> tuple[bool, str]:
    """Promote ``candidate`` over ``champion``? Returns (decision, one-line reason)."""
    if champion is None:
        return True, "first round: no champion yet"
    comparisons = paired_suites(candidate, champion)
    for suite, comparison in comparisons.items():
        if comparison.ci95_high < -max_suite_regression:
            return False, f"significantly worse on {suite}: {comparison.describe()}"
    for (suite, task), comparison in paired_tasks(candidate, champion).items():
        if comparison.ci95_high < -max_suite_regression:
            where = "unperturbed" if suite == NO_PERTURBATION else f"suite {suite}"
            return False, f"significantly worse on {task} ({where}): {comparison.describe()}"
    gain = comparisons[NO_PERTURBATION]
    if rule == "significant":
        if gain.ci95_low > margin:
            return True, f"significantly better: {gain.describe()}"
        return False, f"not significantly better than {margin:+.0%}: {gain.describe()}"
    if gain.difference > margin:
        return True, f"gain above {margin:+.0%}: {gain.describe()}"
    return False, f"gain not above {margin:+.0%}: {gain.describe()}"


def paired_gain(candidate: dict, reference: dict | None) -> dict | None:
    """The unperturbed paired difference candidate − reference, or None if they cannot be paired."""
    if reference is None:
        return None
    try:
        return paired_suites(candidate, reference)[NO_PERTURBATION].to_dict()
    except GateInputError:
        return None
