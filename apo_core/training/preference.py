"""Round k+1 from round k: the update of the champion by one method, against it as reference.

    dagger: NLL on expert + human-correction steps (HG-DAgger on the aggregated data).
    sirius: NLL on batches with Sirius's class shares (interventions 50% of the mass).
    dpo:    chosen = the human's action, rejected = the policy's recorded proposal.
    kto:    prospect loss on balanced batches, λ = 1.
    apo:    prospect loss with adaptive λ_D / λ_U (docs/apo.md §5).

The budget is ``train.epochs`` passes over the human-correction steps (the authors' unit).
Reference log-probs are computed ONCE per round, before training, so no second model sits
in memory during the update. The mismatched pair of sample i (its observation with another
sample's actions, for z0) is fixed up front by a seeded permutation, so its reference
log-prob is precomputed as well; it plays the role of the in-batch roll. z0 is detached
(docs/apo.md §5), so the policy scores the mismatched pair without a graph, on the keys
and values of the own pass's prefix (``forward_with_mismatched``): the backward pass runs
over the sample's own action only, and the pair costs D - 1 tokens, not the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from apo_core.config import UPDATE_METHODS, Method, TrainConfig
from apo_core.data.steps import Steps
from apo_core.labels import ActedBy, Label
from apo_core.objectives import action_logps, apo_loss, dpo_loss, exact_token_kl, greedy_l1_error, kto_loss, nll_loss
from apo_core.policy import DECODER_LORA_TARGETS, ApoVlaPolicy
from apo_core.sampler import BalancedBatchSampler, balanced_epochs, preference_pools, sirius_ratios, uniform_epochs
from apo_core.training.run import Notice, ProgressCallback, observation_inputs, optimise, resolve_device, run_identity


@dataclass
class _Reference:
    """Reference-policy quantities for every training sample, computed once per round."""

    logps: torch.Tensor  # [N, D] token log-probs of the sample's own action
    kl_logps: torch.Tensor  # [N, D] token log-probs of the mismatched (partner) action
    logprobs: torch.Tensor | None  # [N, D, n_bins] full distributions (exact z0 only)


@torch.no_grad()
def _reference_pass(reference: ApoVlaPolicy, steps: Steps, index: np.ndarray, candidates: torch.Tensor,
                    keep_full: bool, device: torch.device):
    """Token log-probs of each candidate action under the reference, in chunks."""
    logps, full = [], []
    for start in range(0, len(index), 256):
        chunk = index[start : start + 256]
        pixels, state, instructions = observation_inputs(reference, steps, chunk, device)
        chunk_candidates = candidates[start : start + 256].to(device)
        output = reference(pixels, state, instructions, chunk_candidates)
        logps.append(reference.token_logps(output, chunk_candidates))
        if keep_full:
            full.append(output.action_logprobs[:, 0])
    return torch.cat(logps), (torch.cat(full) if keep_full else None)


def with_lora(policy: ApoVlaPolicy, config: TrainConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=DECODER_LORA_TARGETS,
    )
    return get_peft_model(policy, lora)


def update_schedule(steps: Steps, method: Method, config: TrainConfig) -> list:
    """The batches of one update: ``config.epochs`` passes over the human-correction steps.

    kto / apo:  balanced batches (docs/apo.md §3), an epoch = one pass over the human pool.
    sirius:     balanced batches with Sirius's class shares (autonomous steps count as
                correct), same epoch.
    dagger:     shuffled passes over expert + human steps (every human step once per epoch).
    dpo:        shuffled passes over the human steps that have a recorded policy proposal.
    """
    if method in ("kto", "apo", "sirius"):
        sirius = method == "sirius"
        pools = preference_pools(steps.labels, steps.acted_by,
                                 autonomous_is_correct=sirius or config.autonomous_is_correct)
        ratios = (sirius_ratios(config.sirius_intervention_share, config.sirius_pre_intervention_share)
                  if sirius else dict(config.ratios))
        sampler = BalancedBatchSampler(pools, batch_size=config.batch_size, ratios=ratios, seed=config.seed)
        return balanced_epochs(sampler, config.epochs)
    if method == "dagger":
        learn_from = np.flatnonzero((steps.acted_by == ActedBy.EXPERT_DEMO) | (steps.labels == Label.HUMAN))
    else:
        has_proposal = ~np.isnan(steps.policy_actions).any(axis=1)
        learn_from = np.flatnonzero((steps.acted_by == ActedBy.HUMAN) & has_proposal)
    if not np.any(steps.labels[learn_from] == Label.HUMAN):
        raise ValueError(f"{method}: no human-correction steps in the data: nothing to learn from")
    return uniform_epochs(learn_from, config.batch_size, config.epochs, config.seed)


def trainable_update(reference: ApoVlaPolicy, config: TrainConfig):
    """The module the update trains: LoRA adapters on the decoder, or every parameter."""
    if config.update_params == "full":
        return reference
    return with_lora(reference, config)


def train_preference(
    reference: ApoVlaPolicy,
    steps: Steps,
    method: Method,
    config: TrainConfig,
    work_dir: Path,
    *,
    on_step: ProgressCallback | None = None,
    on_notice: Notice | None = None,
) -> ApoVlaPolicy:
    """An update of ``reference`` (LoRA on its decoder, merged, or every parameter) by
    ``method``, ``config.epochs`` passes over the human-correction steps.

    ``reference`` is consumed (its module receives the update): load it afresh from its
    saved round to use it again.
    """
    if method not in UPDATE_METHODS:
        raise ValueError(f"train_preference: method must be one of {', '.join(UPDATE_METHODS)}, got {method!r}")
    device = resolve_device(config.device)
    reference.to(device).eval()
    tokenizer = reference.action_tokenizer
    gripper = reference.config.gripper_dim if config.ignore_gripper_when_undesirable else None
    bins = torch.from_numpy(tokenizer.encode(steps.actions))
    schedule = update_schedule(steps, method, config)

    if method in ("kto", "apo"):
        partner = torch.from_numpy(np.random.default_rng([config.seed, 1]).permutation(len(steps)))
        own_and_partner = torch.stack([bins, bins[partner]], dim=1)
        ref_logps, ref_full = _reference_pass(reference, steps, np.arange(len(steps)), own_and_partner,
                                              config.z0_mode == "exact", device)
        ref = _Reference(logps=ref_logps[:, 0], kl_logps=ref_logps[:, 1], logprobs=ref_full)
        own_and_partner = own_and_partner.to(device)
        normalized = torch.from_numpy(tokenizer.normalize(steps.actions).astype(np.float32)).to(device)
        centers = torch.from_numpy(tokenizer.centers.astype(np.float32)).to(device)
    elif method == "dpo":
        pairs = np.unique(np.concatenate(schedule))
        rejected_bins = torch.from_numpy(tokenizer.encode(np.nan_to_num(steps.policy_actions)))
        chosen_and_rejected = torch.stack([bins, rejected_bins], dim=1)
        ref_logps, _ = _reference_pass(reference, steps, pairs, chosen_and_rejected[pairs], False, device)
        ref_by_row = torch.zeros(len(steps), 2, device=device)
        ref_by_row[torch.from_numpy(pairs).to(device)] = ref_logps.sum(dim=-1)
        chosen_and_rejected = chosen_and_rejected.to(device)
    bins = bins.to(device)

    # The update goes into the reference itself: nothing reads its weights once the
    # reference pass above is done (with LoRA its frozen base weights ARE the reference).
    model = trainable_update(reference, config)
    policy: ApoVlaPolicy = reference

    def batch_index(step: int) -> tuple[np.ndarray, torch.Tensor]:
        entry = schedule[step]
        if isinstance(entry, dict):
            index = np.concatenate([entry[name] for name in ("correct", "human", "failure") if name in entry])
            desirable = torch.from_numpy(steps.labels[index] != Label.FAILURE_PRONE).to(device)
            return index, desirable
        return entry, torch.ones(len(entry), dtype=torch.bool, device=device)

    def loss_at(step: int):
        index, desirable = batch_index(step)
        pixels, state, instructions = observation_inputs(policy, steps, index, device)
        if method in ("dagger", "sirius"):
            output = model(pixels, state, instructions, bins[index])
            return nll_loss(policy.token_logps(output, bins[index]))
        if method == "dpo":
            candidates = chosen_and_rejected[index]
            logps = policy.token_logps(model(pixels, state, instructions, candidates), candidates).sum(dim=-1)
            return dpo_loss(logps[:, 0], logps[:, 1], ref_by_row[index, 0], ref_by_row[index, 1], beta=config.beta)
        own = own_and_partner[index, :1]
        if config.z0_mode == "exact":
            output = model(pixels, state, instructions, own)
        else:  # LoRA's adapters sit in the policy's own layers: this call goes through them too
            output, partner_logps = policy.forward_with_mismatched(pixels, state, instructions, own[:, 0],
                                                                   own_and_partner[index, 1])
        token_logps = policy.token_logps(output, own)
        policy_logps = action_logps(token_logps[:, 0], desirable, gripper)
        reference_logps = action_logps(ref.logps[index], desirable, gripper)
        if config.z0_mode == "exact":
            kl_policy = exact_token_kl(output.action_logprobs[:, 0], ref.logprobs[index])
            kl_reference = torch.zeros_like(kl_policy)
        else:
            kl_policy = partner_logps.sum(dim=-1)
            kl_reference = ref.kl_logps[index].sum(dim=-1)
        if method == "kto":
            loss, metrics = kto_loss(
                policy_logps, reference_logps, kl_policy, kl_reference, desirable,
                beta=config.beta, z0_clamp=config.z0_clamp,
            )
        else:
            l1_error = greedy_l1_error(output.action_logprobs[:, 0], centers, normalized[index])
            loss, metrics = apo_loss(
                policy_logps, reference_logps, kl_policy, kl_reference, desirable, l1_error,
                beta=config.beta, beta_d=config.beta_d, beta_u=config.beta_u,
                z0_clamp=config.z0_clamp, weight_norm=config.weight_norm,
                desirable_mass_ratio=config.desirable_mass_ratio,
            )
        if config.nll_weight > 0 and desirable.any():
            anchor, _ = nll_loss(token_logps[:, 0][desirable])
            loss, metrics = loss + config.nll_weight * anchor, {**metrics, "nll_anchor": anchor.detach()}
        return loss, metrics

    optimise(model, loss_at, identity=run_identity(steps, method, config, len(schedule)), lr=config.lr,
             warmup=config.warmup_steps, work_dir=Path(work_dir), checkpoint_every=config.checkpoint_every,
             threads=config.threads, on_step=on_step, on_notice=on_notice)
    updated = model if config.update_params == "full" else model.merge_and_unload()
    return updated.to("cpu").eval()
