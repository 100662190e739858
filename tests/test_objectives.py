"""APO, KTO, DPO and NLL on hand-computed cases (docs/apo.md §5)."""

import math

import pytest
import torch

from apo_core.objectives import (
    action_logps,
    adaptive_weights,
    apo_loss,
    balance_mass,
    dpo_loss,
    exact_token_kl,
    kto_loss,
    l1_error,
    nll_loss,
)


def sig(x):
    return 1 / (1 + math.exp(-x))


def test_at_step_zero_every_sample_loss_is_one_half():
    logps = torch.tensor([-3.0, -7.5, -1.2, -4.4])
    desirable = torch.tensor([True, False, True, False])
    _, metrics = apo_loss(logps, logps, logps.roll(1), logps.roll(1), desirable, torch.rand(4))
    assert metrics["loss_unweighted"].item() == pytest.approx(0.5)
    loss, _ = kto_loss(logps, logps, logps, logps, desirable)
    assert loss.item() == pytest.approx(0.5)


def test_apo_hand_computed_with_z0_and_weights():
    policy = torch.tensor([-1.0, -2.0])
    ref = torch.tensor([-2.0, -1.0])  # rewards r = [1, -1]
    kl_policy, kl_ref = torch.tensor([-1.0, -1.0]), torch.tensor([-1.5, -1.5])  # z0 = 0.5
    desirable = torch.tensor([True, False])
    l1 = torch.tensor([0.3, 0.1])  # w = [0.75, 0.25]
    loss, metrics = apo_loss(policy, ref, kl_policy, kl_ref, desirable, l1, beta=0.1)
    L_d = 1 - sig(0.1 * (1 - 0.5))
    L_u = 1 - sig(0.1 * (0.5 - (-1)))
    lam_d = 1 - math.exp(-0.75)
    lam_u = math.exp(-0.25)
    assert metrics["z0"].item() == pytest.approx(0.5)
    assert loss.item() == pytest.approx((lam_d * L_d + lam_u * L_u) / 2, rel=1e-6)


def test_no_gradient_reaches_the_mismatched_pairs_through_z0():
    """z0 is detached: the update may score the mismatched pairs without a graph."""
    policy = torch.tensor([-1.0, -2.0], requires_grad=True)
    kl_policy = torch.tensor([-1.0, -3.0], requires_grad=True)
    desirable = torch.tensor([True, False])
    for loss, _ in (apo_loss(policy, torch.zeros(2), kl_policy, torch.zeros(2), desirable, torch.ones(2)),
                    kto_loss(policy, torch.zeros(2), kl_policy, torch.zeros(2), desirable)):
        loss.backward()
    assert kl_policy.grad is None
    assert policy.grad is not None and policy.grad.abs().sum() > 0


def test_z0_clamp():
    zeros = torch.zeros(2)
    desirable = torch.tensor([True, False])
    big = torch.tensor([20.0, 20.0])
    _, m = apo_loss(zeros, zeros, big, zeros, desirable, torch.ones(2))
    assert m["z0"].item() == 5.0
    _, m = apo_loss(zeros, zeros, -big, zeros, desirable, torch.ones(2))
    assert m["z0"].item() == -5.0
    _, m = apo_loss(zeros, zeros, -big, zeros, desirable, torch.ones(2), z0_clamp=None)
    assert m["z0"].item() == -20.0
    _, m = kto_loss(zeros, zeros, -big, zeros, desirable)  # TRL: z0 >= 0
    assert m["z0"].item() == 0.0


def test_z0_is_detached():
    policy = torch.zeros(2, requires_grad=True)
    kl = torch.tensor([1.0, 2.0], requires_grad=True)
    loss, _ = apo_loss(policy, torch.zeros(2), kl, torch.zeros(2), torch.tensor([True, False]), torch.ones(2))
    loss.backward()
    assert kl.grad is None and policy.grad is not None


def test_gripper_token_left_out_for_undesirable_samples_only():
    token_logps = torch.tensor([[-1.0, -1.0, -1.0, -10.0], [-1.0, -1.0, -1.0, -10.0]])
    desirable = torch.tensor([True, False])
    sums = action_logps(token_logps, desirable, [3])
    assert sums.tolist() == [-13.0, -3.0]
    assert action_logps(token_logps, desirable, None).tolist() == [-13.0, -13.0]


def test_weights_batch_and_subset_norms():
    l1 = torch.tensor([0.2, 0.6, 0.1, 0.1])
    desirable = torch.tensor([True, True, False, False])
    batch = adaptive_weights(l1, desirable, weight_norm="batch")
    w = [0.2, 0.6, 0.1, 0.1]
    expected = [1 - math.exp(-w[0]), 1 - math.exp(-w[1]), math.exp(-w[2]), math.exp(-w[3])]
    assert batch.tolist() == pytest.approx(expected)
    subset = adaptive_weights(l1, desirable, weight_norm="subset", beta_d=2.0)
    s = [(0.2 + 1e-4) / (0.8 + 2e-4), (0.6 + 1e-4) / (0.8 + 2e-4), 0.5, 0.5]
    expected = [1 - math.exp(-2 * s[0]), 1 - math.exp(-2 * s[1]), math.exp(-s[2]), math.exp(-s[3])]
    assert subset.tolist() == pytest.approx(expected)
    # Harder desirable samples weigh more; undesirable close to the failure weigh more.
    assert batch[1] > batch[0] and adaptive_weights(torch.tensor([0.1, 0.5]), torch.tensor([False, False]))[0] > \
        adaptive_weights(torch.tensor([0.1, 0.5]), torch.tensor([False, False]))[1]


def test_l1_error_is_the_mean_absolute_error_and_nan_where_undecodable():
    decoded = torch.tensor([[-0.5, 0.5], [0.5, 0.0], [1.0, 1.0]])
    target = torch.tensor([[-0.5, 0.0], [0.0, 0.2], [0.0, 0.0]])
    error = l1_error(decoded, target, torch.tensor([True, True, False]))
    assert error[:2].tolist() == pytest.approx([(0.0 + 0.5) / 2, (0.5 + 0.2) / 2])
    assert math.isnan(error[2].item())


def test_undecodable_samples_weigh_one():
    weights = adaptive_weights(torch.tensor([float("nan"), 0.5]), torch.tensor([True, True]))
    assert weights[0].item() == 1.0 and weights[1].item() == pytest.approx(1 - math.exp(-1.0))


def test_kto_equals_apo_with_unit_weights():
    g = torch.Generator().manual_seed(0)
    p, r, kp, kr = (torch.randn(6, generator=g) for _ in range(4))
    desirable = torch.tensor([True, False, True, True, False, False])
    kto, _ = kto_loss(p, r, kp, kr, desirable, z0_clamp=(-5.0, 5.0))
    _, metrics = apo_loss(p, r, kp, kr, desirable, torch.ones(6), z0_clamp=(-5.0, 5.0))
    assert kto.item() == pytest.approx(metrics["loss_unweighted"].item())


def test_dpo_and_nll():
    loss, m = dpo_loss(torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.5)
    assert loss.item() == pytest.approx(-math.log(sig(0.5 * 2.0)))
    assert m["pair_accuracy"].item() == 1.0
    assert nll_loss(torch.tensor([[-1.0, -3.0]]))[0].item() == 2.0


def test_exact_kl_is_zero_for_equal_and_positive_otherwise():
    logits = torch.randn(3, 4, 256)
    logprobs = logits.log_softmax(-1)
    assert exact_token_kl(logprobs, logprobs).abs().max().item() < 1e-5
    other = torch.randn(3, 4, 256).log_softmax(-1)
    assert torch.all(exact_token_kl(logprobs, other) > 0)


def test_balance_mass_sets_the_desirable_to_undesirable_ratio_and_keeps_the_total():
    weights = torch.tensor([0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.8, 0.9])
    desirable = torch.tensor([True] * 6 + [False] * 2)
    balanced = balance_mass(weights, desirable, 4 / 3)
    assert balanced.sum() == pytest.approx(weights.sum())
    assert balanced[desirable].sum() / balanced[~desirable].sum() == pytest.approx(4 / 3)
    assert torch.equal(balance_mass(weights, desirable, None), weights)
    assert torch.equal(balance_mass(weights, torch.ones(8, dtype=torch.bool), 1.0), weights)  # no undesirable
