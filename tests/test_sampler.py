import numpy as np
import pytest

from apo_core.labels import ActedBy, Label
from apo_core.sampler import (
    BalancedBatchSampler,
    balanced_epochs,
    preference_pools,
    sirius_ratios,
    uniform_epochs,
)


def make_pools(correct=500, human=200, failure=80):
    return {
        "correct": np.arange(correct),
        "human": np.arange(correct, correct + human),
        "failure": np.arange(correct + human, correct + human + failure),
    }


@pytest.mark.parametrize("batch_size", [8, 10, 13])
def test_proportions_over_many_batches(batch_size):
    sampler = BalancedBatchSampler(make_pools(), batch_size=batch_size, seed=0)
    totals = dict.fromkeys(("correct", "human", "failure"), 0)
    for _ in range(10):
        for batch in sampler:
            for name, indices in batch.items():
                totals[name] += len(indices)
    grand = sum(totals.values())
    assert abs(totals["correct"] / grand - 0.50) <= 0.02
    assert abs(totals["human"] / grand - 0.25) <= 0.02
    assert abs(totals["failure"] / grand - 0.25) <= 0.02


def test_an_epoch_is_one_pass_over_the_human_pool():
    pools = make_pools(human=50)
    sampler = BalancedBatchSampler(pools, batch_size=8, seed=3)
    batches = list(sampler)
    human = np.concatenate([b["human"] for b in batches])
    assert sorted(human.tolist()) == pools["human"].tolist()
    assert len(batches) == len(sampler) == 25
    # The smaller failure pool cycles: all its steps appear, some more than once.
    failure = np.concatenate([b["failure"] for b in batches])
    assert set(failure.tolist()) <= set(pools["failure"].tolist()) and len(failure) == 50


def test_empty_pool_gives_its_share_away_and_empty_human_pool_is_refused():
    pools = make_pools()
    pools["failure"] = np.array([], dtype=int)
    sampler = BalancedBatchSampler(pools, batch_size=9)
    assert sampler.shares == pytest.approx({"correct": 2 / 3, "human": 1 / 3})
    pools["human"] = np.array([], dtype=int)
    with pytest.raises(ValueError, match="no human-correction steps"):
        BalancedBatchSampler(pools)


def test_deterministic_under_a_seed():
    first = [b["correct"].tolist() for b in BalancedBatchSampler(make_pools(), seed=7)]
    again = [b["correct"].tolist() for b in BalancedBatchSampler(make_pools(), seed=7)]
    assert first == again


def test_pools_from_labels():
    labels = np.array([1, 1, 0, 2, 2, 1, -1, 1])
    acted = np.array([2, 2, 0, 1, 1, 0, 0, 0])
    pools = preference_pools(labels, acted)
    assert pools["correct"].tolist() == [0, 1]
    assert pools["human"].tolist() == [3, 4] and pools["failure"].tolist() == [2]
    assert preference_pools(labels, acted, autonomous_is_correct=True)["correct"].tolist() == [0, 1, 5, 7]
    assert Label.DROPPED == -1 and ActedBy.EXPERT_DEMO == 2


@pytest.mark.parametrize("epochs", [1, 3, 50])
def test_the_epoch_budget_visits_every_human_step_exactly_epochs_times(epochs):
    pools = make_pools(correct=300, human=37, failure=20)
    batches = balanced_epochs(BalancedBatchSampler(pools, batch_size=8, seed=1), epochs)
    visits = np.bincount(np.concatenate([b["human"] for b in batches]), minlength=400)
    assert set(visits[pools["human"]]) == {epochs}


@pytest.mark.parametrize("epochs", [1, 4])
def test_uniform_epochs_visit_every_step_exactly_epochs_times(epochs):
    batches = uniform_epochs(np.arange(10, 31), batch_size=8, epochs=epochs, seed=0)
    assert len(batches) == epochs * 3  # ceil(21 / 8) batches per pass
    visits = np.bincount(np.concatenate(batches), minlength=31)
    assert set(visits[10:31]) == {epochs} and not visits[:10].any()


def test_a_fractional_epoch_stops_part_way():
    sampler = BalancedBatchSampler(make_pools(human=80), batch_size=8, seed=0)  # 40 batches per epoch
    assert len(balanced_epochs(sampler, 0.5)) == 20
    assert len(uniform_epochs(np.arange(80), 8, 0.01, 0)) == 1


def test_sirius_weights_sum_as_specified():
    ratios = sirius_ratios(intervention_share=0.5, pre_intervention_share=0.002)
    assert ratios == pytest.approx({"correct": 0.498, "human": 0.5, "failure": 0.002})
    assert sum(ratios.values()) == pytest.approx(1.0)
    sampler = BalancedBatchSampler(make_pools(correct=2000, human=500, failure=300), batch_size=8, ratios=ratios)
    totals = dict.fromkeys(("correct", "human", "failure"), 0)
    for batch in balanced_epochs(sampler, 4):
        for name, indices in batch.items():
            totals[name] += len(indices)
    grand = sum(totals.values())
    assert totals["human"] / grand == pytest.approx(0.5, abs=0.01)
    assert totals["failure"] / grand == pytest.approx(0.002, abs=0.002)
    with pytest.raises(ValueError, match="nothing for demos"):
        sirius_ratios(0.9, 0.2)
