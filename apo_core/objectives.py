"""Training objectives as pure functions on tensors (docs/apo.md §5, §7).

Notation (per sample i, action tokens y = y_1..y_D of observation o):
    logp_θ(i)  = sum over counted tokens t of log π_θ(y_t | o, y_<t)
    r_i        = logp_θ(i) - logp_ref(i)                            implied reward
    z0         = mean_j [logp_θ(o_j, y_{j+1}) - logp_ref(o_j, y_{j+1})]   KL estimate on
                 mismatched pairs, detached, clamped (APO code: [-5, 5]; KTO: >= 0)
    desirable:   L_i = 1 - σ(β (r_i - z0))
    undesirable: L_i = 1 - σ(β (z0 - r_i))
APO reweights each L_i with the policy's current continuous error (detached):
    l_i  = mean_d |decode(argmax π_θ(·|o_i)) - a_i|   (normalised action space; NaN: undecodable)
    w_i  = l_i / Σ_j l_j                            ("batch", the paper)
           or (l_i + 1e-4) / Σ_{j ∈ same subset} (l_j + 1e-4)   ("subset", the code)
    λ_D  = 1 - exp(-β_D w_i)        λ_U = exp(-β_U w_i)
    loss = mean_i λ_i L_i            (λ_i = 1 where l_i is NaN: undecodable)
KTO is the same loss with λ = 1. DPO and BC/DAgger are the paper's other baselines;
Sirius (intervention-weighted BC) is the NLL on batches whose class shares are its weights.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

SUBSET_SMOOTHING = 1e-4


def action_logps(token_logps: torch.Tensor, desirable: torch.Tensor,
                 undesirable_skips: list[int] | None) -> torch.Tensor:
    """Per-sample sums of action-token log-probs [B, T] -> [B] (a chunk's r sums over all its
    tokens, docs/apo.md §5).

    The supplementary ignores the gripper token's reject reward: for undesirable samples
    the tokens at ``undesirable_skips`` (the gripper's in each step of the chunk, or None to
    count every token) are left out of the sum (``train.kto.ignore_gripper_when_undesirable``).
    """
    counted = torch.ones_like(token_logps, dtype=torch.bool)
    if undesirable_skips is not None:
        counted[:, undesirable_skips] = desirable.unsqueeze(-1)
    return (token_logps * counted).sum(dim=-1)


def exact_token_kl(policy_token_logprobs: torch.Tensor, ref_token_logprobs: torch.Tensor) -> torch.Tensor:
    """Σ_t KL(π_θ(·|o, y_<t) || π_ref(·|o, y_<t)) over the action bins: [B, D, V] -> [B].

    An exact alternative to the mismatched-pair estimate of z0, from logits already at
    hand; pass it as ``kl_policy_logps`` with ``kl_ref_logps = 0`` to :func:`apo_loss`.
    """
    probs = policy_token_logprobs.exp()
    return (probs * (policy_token_logprobs - ref_token_logprobs)).sum(dim=(-1, -2))


def _z0(kl_policy_logps: torch.Tensor, kl_ref_logps: torch.Tensor, clamp: tuple[float | None, float | None] | None):
    z0 = (kl_policy_logps - kl_ref_logps).mean().detach()
    if clamp is not None:
        z0 = z0.clamp(min=clamp[0], max=clamp[1])
    return z0


def kto_losses(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    kl_policy_logps: torch.Tensor,
    kl_ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    *,
    beta: float,
    z0_clamp: tuple[float | None, float | None] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unweighted per-sample prospect losses L_i, the rewards r_i and z0."""
    rewards = policy_logps - ref_logps
    z0 = _z0(kl_policy_logps, kl_ref_logps, z0_clamp)
    margin = torch.where(desirable, rewards - z0, z0 - rewards)
    return 1.0 - torch.sigmoid(beta * margin), rewards, z0


def l1_error(decoded: torch.Tensor, target: torch.Tensor, decodable: torch.Tensor) -> torch.Tensor:
    """l_i = mean_d |decoded_i - a_i| in normalised action space, detached; NaN where the
    policy's greedy tokens could not be decoded (its weight is then 1, :func:`adaptive_weights`).

    ``decoded`` [B, ...]: the decode of the argmax token at each teacher-forced position;
    ``target`` the normalised actions (chunks), of the same shape; ``decodable`` [B] bool.
    """
    error = (decoded.detach() - target).abs().flatten(1).mean(dim=-1)
    return torch.where(decodable, error, torch.full_like(error, float("nan")))


def adaptive_weights(
    l1_error: torch.Tensor,
    desirable: torch.Tensor,
    *,
    beta_d: float = 1.0,
    beta_u: float = 1.0,
    weight_norm: Literal["batch", "subset"] = "batch",
) -> torch.Tensor:
    """λ_i: 1 - exp(-β_D w_i) for desirable, exp(-β_U w_i) for undesirable samples."""
    error = l1_error.detach()
    undecodable = torch.isnan(error)
    error = torch.nan_to_num(error, nan=0.0)
    if weight_norm == "batch":
        w = error / error.sum().clamp_min(torch.finfo(error.dtype).tiny)
    elif weight_norm == "subset":
        smoothed = error + SUBSET_SMOOTHING
        desirable_total = smoothed[desirable].sum()
        undesirable_total = smoothed[~desirable].sum()
        w = smoothed / torch.where(desirable, desirable_total, undesirable_total)
    else:
        raise ValueError(f"weight_norm must be 'batch' or 'subset', got {weight_norm!r}")
    weights = torch.where(desirable, 1.0 - torch.exp(-beta_d * w), torch.exp(-beta_u * w))
    return torch.where(undecodable, torch.ones_like(weights), weights)


def balance_mass(weights: torch.Tensor, desirable: torch.Tensor, ratio: float | None) -> torch.Tensor:
    """KTO-style balance: rescale λ so that Σ_D λ / Σ_U λ = ``ratio``, keeping Σ λ.

    With D = Σ_D λ_i, U = Σ_U λ_i, T = D + U: desirable λ × T·r/((1+r)·D), undesirable
    λ × T/((1+r)·U). TRL's KTO asks for λ_D·n_D / (λ_U·n_U) in [1, 4/3]. Unchanged when
    ``ratio`` is None or a batch has no sample of one kind.
    """
    if ratio is None:
        return weights
    desirable_total, undesirable_total = weights[desirable].sum(), weights[~desirable].sum()
    if desirable_total <= 0 or undesirable_total <= 0:
        return weights
    total = desirable_total + undesirable_total
    scale_d = total * ratio / ((1 + ratio) * desirable_total)
    scale_u = total / ((1 + ratio) * undesirable_total)
    return weights * torch.where(desirable, scale_d, scale_u)


def apo_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    kl_policy_logps: torch.Tensor,
    kl_ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    l1_error: torch.Tensor,
    *,
    beta: float = 0.1,
    beta_d: float = 1.0,
    beta_u: float = 1.0,
    z0_clamp: tuple[float | None, float | None] | None = (-5.0, 5.0),
    weight_norm: Literal["batch", "subset"] = "batch",
    desirable_mass_ratio: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """APO (docs/apo.md §5): mean over the batch of λ_i · L_i (λ optionally mass-balanced).

    All ``*_logps`` are per-sample sums over the counted action tokens, shape [B];
    ``desirable`` is bool [B]; ``l1_error`` float [B] (NaN = undecodable, weight 1).
    """
    desirable = desirable.bool()
    losses, rewards, z0 = kto_losses(
        policy_logps, ref_logps, kl_policy_logps, kl_ref_logps, desirable, beta=beta, z0_clamp=z0_clamp
    )
    weights = adaptive_weights(l1_error, desirable, beta_d=beta_d, beta_u=beta_u, weight_norm=weight_norm)
    weights = balance_mass(weights, desirable, desirable_mass_ratio)
    metrics = _preference_metrics(losses, rewards, z0, desirable)
    metrics["weight_mean"] = weights.mean().detach()
    return (weights * losses).mean(), metrics


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    kl_policy_logps: torch.Tensor,
    kl_ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    *,
    beta: float = 0.1,
    z0_clamp: tuple[float | None, float | None] | None = (0.0, None),
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """KTO baseline: the same prospect loss with λ_D = λ_U = 1 (TRL clamps z0 >= 0)."""
    desirable = desirable.bool()
    losses, rewards, z0 = kto_losses(
        policy_logps, ref_logps, kl_policy_logps, kl_ref_logps, desirable, beta=beta, z0_clamp=z0_clamp
    )
    return losses.mean(), _preference_metrics(losses, rewards, z0, desirable)


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DPO baseline: -log σ(β [(logp_θ(y_w) - logp_ref(y_w)) - (logp_θ(y_l) - logp_ref(y_l))]).

    Pairs come from the data: on a human step the chosen action is the human's and the
    rejected one is the policy's own recorded proposal for the same observation.
    """
    chosen = policy_chosen_logps - ref_chosen_logps
    rejected = policy_rejected_logps - ref_rejected_logps
    losses = -F.logsigmoid(beta * (chosen - rejected))
    metrics = {
        "loss": losses.mean().detach(),
        "reward_margin": (chosen - rejected).mean().detach(),
        "pair_accuracy": (chosen > rejected).float().mean().detach(),
    }
    return losses.mean(), metrics


def nll_loss(token_logps: torch.Tensor,
             mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """BC / DAgger baseline: mean negative log-likelihood of the action tokens [B, T]
    (over the positions ``mask`` marks, when token sequences differ in length)."""
    loss = -token_logps.mean() if mask is None else -(token_logps * mask).sum() / mask.sum().clamp_min(1)
    return loss, {"loss": loss.detach()}


def _preference_metrics(losses, rewards, z0, desirable) -> dict[str, torch.Tensor]:
    def mean_of(mask):
        return rewards[mask].mean().detach() if mask.any() else torch.tensor(float("nan"))

    return {
        "loss_unweighted": losses.mean().detach(),
        "z0": z0.detach(),
        "reward_desirable": mean_of(desirable),
        "reward_undesirable": mean_of(~desirable),
    }
