"""The paired promote gate (apo_core/registry/gate.py) on evaluation records built seed by seed."""

import pytest

from apo_core.registry.gate import GateInputError, promotion_decision, summarise


def record(successes: dict[str, list[int]], task: str = "push", first_seed: int = 800_000_000) -> dict:
    """Gate metrics of evaluation rows with the given per-seed successes for each suite."""
    rows = [{"task": task, "suite": suite, "episodes": len(flags), "successes": sum(flags),
             "outcomes": [{"seed": first_seed + i, "success": bool(f), "length": 50, "takeovers": 0}
                          for i, f in enumerate(flags)]}
            for suite, flags in successes.items()]
    return summarise(rows)


CHAMPION = [1] * 20 + [0] * 80  # 20%


def test_summarise_keys_outcomes_by_task_and_seed():
    metrics = record({"none": [1, 0, 1], "lighting": [0, 0]})
    assert metrics["success_rate"] == pytest.approx(2 / 3)
    assert metrics["outcomes"]["none"] == {"push:800000000": 1, "push:800000001": 0, "push:800000002": 1}
    assert metrics["suites"] == {"lighting": 0.0}


def test_first_round_is_promoted():
    assert promotion_decision(record({"none": [0, 1]}), None) == (True, "first round: no champion yet")


def test_a_significantly_better_candidate_is_promoted():
    better = [1] * 20 + [1] * 20 + [0] * 60  # the champion's 20 successes plus 20 more seeds: +20 points
    decision, reason = promotion_decision(record({"none": better}), record({"none": CHAMPION}))
    assert decision and "significantly better" in reason


def test_a_small_gain_is_not_enough_under_the_significance_rule_but_is_under_the_point_rule():
    slightly = [1] * 20 + [1] * 3 + [0] * 77  # +3 points: 3 wins, no loss; p = 0.25
    candidate, champion = record({"none": slightly}), record({"none": CHAMPION})
    assert promotion_decision(candidate, champion) [0] is False
    assert promotion_decision(candidate, champion, rule="point")[0] is True
    assert promotion_decision(candidate, champion, rule="point", margin=0.05)[0] is False


def test_a_significantly_worse_candidate_is_refused():
    worse = [0] * 100
    decision, reason = promotion_decision(record({"none": worse}), record({"none": CHAMPION}), rule="point",
                                          margin=-1.0)
    assert not decision and "significantly worse on none" in reason


def test_significantly_worse_on_a_perturbation_suite_is_refused_even_when_better_unperturbed():
    better = [1] * 60 + [0] * 40
    lighting_champion, lighting_candidate = [1] * 30 + [0] * 70, [0] * 100
    decision, reason = promotion_decision(record({"none": better, "lighting": lighting_candidate}),
                                          record({"none": CHAMPION, "lighting": lighting_champion}))
    assert not decision and "lighting" in reason
    # ... unless the allowed regression is larger than anything the interval can show
    assert promotion_decision(record({"none": better, "lighting": lighting_candidate}),
                              record({"none": CHAMPION, "lighting": lighting_champion}), max_suite_regression=1.0)[0]


def test_records_without_per_seed_outcomes_are_refused():
    legacy = {"success_rate": 0.2, "ci95_low": 0.1, "ci95_high": 0.3, "suites": {}}
    with pytest.raises(GateInputError, match="champion's evaluation record has no per-seed outcomes"):
        promotion_decision(record({"none": CHAMPION}), legacy)


def test_mismatched_seeds_are_refused():
    with pytest.raises(GateInputError, match="different seeds"):
        promotion_decision(record({"none": CHAMPION}, first_seed=900_000_000), record({"none": CHAMPION}))


def two_tasks(**by_task: list[int]) -> dict:
    """Gate metrics of unperturbed outcomes on several tasks (same seeds each)."""
    rows = [{"task": task, "suite": "none", "episodes": len(flags), "successes": sum(flags),
             "outcomes": [{"seed": 800_000_000 + i, "success": bool(f), "length": 50, "takeovers": 0}
                          for i, f in enumerate(flags)]}
            for task, flags in by_task.items()]
    return summarise(rows)


def test_a_candidate_cannot_trade_one_task_for_another():
    """Pooled +15 points with its interval above 0, but drawer-open 30 points worse: refused,
    the refusal naming the task."""
    champion = two_tasks(**{"button-press": [1] * 20 + [0] * 80, "drawer-open": [1] * 60 + [0] * 40})
    candidate = two_tasks(**{"button-press": [1] * 80 + [0] * 20, "drawer-open": [1] * 30 + [0] * 70})
    assert candidate["tasks"] == {"button-press": 0.8, "drawer-open": 0.3}
    from apo_core.registry.gate import paired_suites

    assert paired_suites(candidate, champion)["none"].ci95_low > 0  # the pooled gain alone would promote
    decision, reason = promotion_decision(candidate, champion)
    assert not decision and reason.startswith("significantly worse on drawer-open (unperturbed)")


def test_a_task_within_its_noise_does_not_block():
    champion = two_tasks(**{"button-press": [1] * 20 + [0] * 80, "drawer-open": [1] * 60 + [0] * 40})
    candidate = two_tasks(**{"button-press": [1] * 80 + [0] * 20, "drawer-open": [1] * 57 + [0] * 43})
    decision, reason = promotion_decision(candidate, champion)
    assert decision and "significantly better" in reason
