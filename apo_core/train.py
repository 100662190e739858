"""Training: behaviour cloning (round 0) and the preference update (round k+1 from round k).

One function per phase, TRL style: :func:`train_bc` (full parameters, NLL on expert action
tokens + an auxiliary continuous regression) and :func:`train_preference` (LoRA on the
decoder; method ∈ dagger | dpo | kto | apo; reference = the frozen previous round).

* Reference log-probs are computed ONCE per round, before training, so no second model
  sits in memory during the update. The mismatched pair of sample i (its observation with
  another sample's actions, for z0) is fixed up front by a seeded permutation, so its
  reference log-prob can be precomputed as well; it plays the role of the in-batch roll.
* Deterministic under ``train.seed``: the batch schedule, augmentation and init are all
  derived from it; a run resumed from a checkpoint continues the same schedule.
* Checkpoints (trainable weights, optimiser, scheduler, step) are written atomically every
  ``checkpoint_every`` steps; a crashed run restarts from the last one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from apo_core.action_tokenizer import ActionTokenizer
from apo_core.config import Method, PolicyConfig, TrainConfig
from apo_core.data.steps import Steps, expert_mask
from apo_core.labels import ActedBy, Label
from apo_core.objectives import (
    action_logps,
    apo_loss,
    dpo_loss,
    exact_token_kl,
    greedy_l1_error,
    kto_loss,
    nll_loss,
)
from apo_core.policy import DECODER_LORA_TARGETS, ApoVlaConfig, ApoVlaPolicy, instruction_vocab
from apo_core.policy.modeling_apo_vla import state_input
from apo_core.sampler import (
    BalancedBatchSampler,
    balanced_epochs,
    preference_pools,
    sirius_ratios,
    uniform_epochs,
)

CHECKPOINT_FILE = "checkpoint.pt"
ProgressCallback = Callable[[int, int, dict[str, float]], None]


# ----- shared pieces -------------------------------------------------------------------
def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up for ``warmup`` steps, then cosine decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def random_shift(pixels: torch.Tensor | None, pad: int, generator: torch.Generator) -> torch.Tensor | None:
    """DrQ-style augmentation: replicate-pad by ``pad`` and crop back at a random offset."""
    if pad == 0 or pixels is None:
        return pixels
    batch, _, height, width = pixels.shape
    padded = F.pad(pixels, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=generator)
    return torch.stack(
        [padded[i, :, y : y + height, x : x + width] for i, (y, x) in enumerate(offsets.tolist())]
    )


def observation_inputs(policy: ApoVlaPolicy, steps: Steps, index: np.ndarray):
    pixels = policy.pixels(torch.from_numpy(steps.images[index])) if policy.config.use_image else None
    state = policy.select_state(torch.from_numpy(steps.proprio[index]), torch.from_numpy(steps.environment_state[index]))
    instructions = policy.instruction_ids(list(steps.instructions[index]))
    return pixels, state, instructions


class Checkpoint:
    """Atomic save/restore of a run's trainable weights, optimiser, scheduler and step."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / CHECKPOINT_FILE

    def save(self, step: int, model: torch.nn.Module, optimizer, scheduler) -> None:
        trainable = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        state = {"step": step, "weights": trainable, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        temporary = self.path.with_suffix(".tmp")
        torch.save(state, temporary)
        os.replace(temporary, self.path)

    def restore(self, model: torch.nn.Module, optimizer, scheduler) -> int:
        """Load the checkpoint if there is one; returns the step to continue from."""
        if not self.path.exists():
            return 0
        state = torch.load(self.path, weights_only=True)
        parameters = dict(model.named_parameters())
        for name, tensor in state["weights"].items():
            parameters[name].data.copy_(tensor)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        return int(state["step"])

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _run(
    model: torch.nn.Module,
    loss_at: Callable[[int], tuple[torch.Tensor, dict[str, torch.Tensor]]],
    *,
    total_steps: int,
    lr: float,
    warmup: int,
    work_dir: Path,
    checkpoint_every: int,
    on_step: ProgressCallback | None,
) -> None:
    """The optimisation loop shared by every method (Adam, warm-up + cosine, checkpoints)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total_steps))
    checkpoint = Checkpoint(work_dir)
    start = checkpoint.restore(model, optimizer, scheduler)
    model.train()
    for step in range(start, total_steps):
        loss, metrics = loss_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        if (step + 1) % checkpoint_every == 0 and step + 1 < total_steps:
            checkpoint.save(step + 1, model, optimizer, scheduler)
        if on_step is not None:
            on_step(step + 1, total_steps, {"loss": float(loss.detach()), **{k: float(v) for k, v in metrics.items()}})
    model.eval()
    checkpoint.remove()


# ----- round 0: behaviour cloning ------------------------------------------------------
def build_policy(
    steps: Steps, policy_config: PolicyConfig, *, image_size: int, action_dim: int, gripper_dim: int, seed: int
) -> ApoVlaPolicy:
    """A randomly initialised VLA whose action statistics come from the expert steps."""
    expert = expert_mask(steps)
    if not expert.any():
        raise ValueError("behaviour cloning needs expert demonstration steps; none were given")
    state = state_input(policy_config.state_inputs, torch.from_numpy(steps.proprio[expert]),
                        torch.from_numpy(steps.environment_state[expert]))
    torch.manual_seed(seed)
    config = ApoVlaConfig(
        image_size=image_size,
        patch_size=policy_config.patch_size,
        proprio_dim=steps.proprio.shape[1],
        environment_state_dim=steps.environment_state.shape[1],
        state_inputs=policy_config.state_inputs,
        use_image=policy_config.use_image,
        vision_hidden_size=policy_config.vision_hidden_size,
        vision_intermediate_size=2 * policy_config.vision_hidden_size,
        vision_layers=policy_config.vision_layers,
        hidden_size=policy_config.hidden_size,
        decoder_intermediate_size=2 * policy_config.hidden_size,
        decoder_layers=policy_config.decoder_layers,
        action_dim=action_dim,
        gripper_dim=gripper_dim,
        instruction_vocab=instruction_vocab(sorted(set(steps.instructions))),
        state_mean=state.mean(dim=0).tolist(),
        state_std=state.std(dim=0).clamp_min(1e-3).tolist(),  # a constant dim (a fixed goal) stays finite
    )
    return ApoVlaPolicy(config, ActionTokenizer.fit(steps.actions[expert]))


def train_bc(
    policy: ApoVlaPolicy,
    steps: Steps,
    config: TrainConfig,
    work_dir: Path,
    *,
    on_step: ProgressCallback | None = None,
) -> ApoVlaPolicy:
    """Round 0: NLL of the expert action tokens + aux_weight · MSE of the regressed action."""
    torch.set_num_threads(config.threads)
    expert = np.flatnonzero(expert_mask(steps))
    normalized = torch.from_numpy(policy.action_tokenizer.normalize(steps.actions).astype(np.float32))
    bins = torch.from_numpy(policy.action_tokenizer.encode(steps.actions))
    batch_size = min(config.bc_batch_size, len(expert))

    def loss_at(step: int):
        rng = np.random.default_rng([config.seed, step])
        index = rng.choice(expert, size=batch_size, replace=False)
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        pixels, state, instructions = observation_inputs(policy, steps, index)
        output = policy(random_shift(pixels, config.augment_shift, generator), state, instructions, bins[index])
        nll, _ = nll_loss(policy.token_logps(output, bins[index]))
        aux = F.mse_loss(output.aux_actions, normalized[index])
        return nll + config.aux_weight * aux, {"nll": nll.detach(), "aux_mse": aux.detach()}

    Path(work_dir).mkdir(parents=True, exist_ok=True)
    _run(
        policy, loss_at, total_steps=config.bc_steps, lr=config.bc_lr, warmup=config.warmup_steps,
        work_dir=Path(work_dir), checkpoint_every=config.checkpoint_every, on_step=on_step,
    )
    return policy


# ----- round k+1: preference update ----------------------------------------------------
@dataclass
class _Reference:
    """Reference-policy quantities for every training sample, computed once per round."""

    logps: torch.Tensor  # [N, D] token log-probs of the sample's own action
    kl_logps: torch.Tensor  # [N, D] token log-probs of the mismatched (partner) action
    logprobs: torch.Tensor | None  # [N, D, n_bins] full distributions (exact z0 only)


@torch.no_grad()
def _reference_pass(reference: ApoVlaPolicy, steps: Steps, index: np.ndarray, candidates: torch.Tensor, keep_full: bool):
    """Token log-probs of each candidate action under the reference, in chunks."""
    logps, full = [], []
    for start in range(0, len(index), 256):
        chunk = index[start : start + 256]
        pixels, state, instructions = observation_inputs(reference, steps, chunk)
        output = reference(pixels, state, instructions, candidates[start : start + 256])
        logps.append(reference.token_logps(output, candidates[start : start + 256]))
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

    kto / apo:  balanced batches (APO_SPEC.md §3), an epoch = one pass over the human pool.
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
) -> ApoVlaPolicy:
    """Round k+1 from round k: an update of ``reference`` (LoRA on its decoder, merged, or
    every parameter), ``config.epochs`` passes over the human-correction steps.

    ``reference`` is consumed (its module receives the update): load it afresh from its
    saved round to use it again.

    dagger: NLL on expert + human-correction steps (HG-DAgger on the aggregated data).
    sirius: NLL on batches with Sirius's class weights (interventions 50% of the mass).
    dpo:    chosen = the human's action, rejected = the policy's recorded proposal, on
            human steps.
    kto:    prospect loss on balanced batches, λ = 1.
    apo:    prospect loss with adaptive λ_D / λ_U (APO_SPEC.md §5).
    """
    if method not in ("dagger", "sirius", "dpo", "kto", "apo"):
        raise ValueError(f"train_preference: method must be dagger, sirius, dpo, kto or apo, got {method!r}")
    torch.set_num_threads(config.threads)
    reference.eval()
    tokenizer = reference.action_tokenizer
    gripper = reference.config.gripper_dim if config.ignore_gripper_when_undesirable else None
    bins = torch.from_numpy(tokenizer.encode(steps.actions))
    all_rows = np.arange(len(steps))
    schedule = update_schedule(steps, method, config)

    if method in ("kto", "apo"):
        partner = torch.from_numpy(np.random.default_rng([config.seed, 1]).permutation(len(steps)))
        own_and_partner = torch.stack([bins, bins[partner]], dim=1)
        ref_logps, ref_full = _reference_pass(reference, steps, all_rows, own_and_partner, config.z0_mode == "exact")
        ref = _Reference(logps=ref_logps[:, 0], kl_logps=ref_logps[:, 1], logprobs=ref_full)
        normalized = torch.from_numpy(tokenizer.normalize(steps.actions).astype(np.float32))
        centers = torch.from_numpy(tokenizer.centers.astype(np.float32))
    elif method == "dpo":
        pairs = np.unique(np.concatenate(schedule))
        rejected_bins = torch.from_numpy(tokenizer.encode(np.nan_to_num(steps.policy_actions)))
        chosen_and_rejected = torch.stack([bins, rejected_bins], dim=1)
        ref_logps, _ = _reference_pass(reference, steps, pairs, chosen_and_rejected[pairs], False)
        ref_by_row = torch.zeros(len(steps), 2)
        ref_by_row[pairs] = ref_logps.sum(dim=-1)

    # The update goes into the reference itself: nothing reads its weights once the
    # reference pass above is done (with LoRA its frozen base weights ARE the reference).
    model = trainable_update(reference, config)
    policy: ApoVlaPolicy = reference

    def batch_index(step: int) -> tuple[np.ndarray, torch.Tensor]:
        entry = schedule[step]
        if isinstance(entry, dict):
            index = np.concatenate([entry[name] for name in ("correct", "human", "failure") if name in entry])
            desirable = torch.from_numpy(steps.labels[index] != Label.FAILURE_PRONE)
            return index, desirable
        return entry, torch.ones(len(entry), dtype=torch.bool)

    def loss_at(step: int):
        index, desirable = batch_index(step)
        pixels, state, instructions = observation_inputs(policy, steps, index)
        if method in ("dagger", "sirius"):
            output = model(pixels, state, instructions, bins[index])
            return nll_loss(policy.token_logps(output, bins[index]))
        if method == "dpo":
            candidates = chosen_and_rejected[index]
            logps = policy.token_logps(model(pixels, state, instructions, candidates), candidates).sum(dim=-1)
            return dpo_loss(logps[:, 0], logps[:, 1], ref_by_row[index, 0], ref_by_row[index, 1], beta=config.beta)
        candidates = own_and_partner[index]
        output = model(pixels, state, instructions, candidates)
        token_logps = policy.token_logps(output, candidates)
        policy_logps = action_logps(token_logps[:, 0], desirable, gripper)
        reference_logps = action_logps(ref.logps[index], desirable, gripper)
        if config.z0_mode == "exact":
            kl_policy = exact_token_kl(output.action_logprobs[:, 0], ref.logprobs[index])
            kl_reference = torch.zeros_like(kl_policy)
        else:
            kl_policy, kl_reference = token_logps[:, 1].sum(dim=-1), ref.kl_logps[index].sum(dim=-1)
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

    Path(work_dir).mkdir(parents=True, exist_ok=True)
    _run(
        model, loss_at, total_steps=len(schedule), lr=config.lr, warmup=config.warmup_steps,
        work_dir=Path(work_dir), checkpoint_every=config.checkpoint_every, on_step=on_step,
    )
    return (model if config.update_params == "full" else model.merge_and_unload()).eval()
