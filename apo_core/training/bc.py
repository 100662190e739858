"""Round 0: behaviour cloning from the expert demonstrations, every parameter, from scratch.

Loss: NLL of the expert's action tokens + ``aux_weight`` · MSE of the regressed
(normalised) action, which gives a vision tower a direct signal (modeling_apo_vla.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from apo_core.action_tokenizer import ActionTokenizer
from apo_core.config import PolicyConfig, TrainConfig
from apo_core.data.steps import Steps, expert_mask
from apo_core.objectives import nll_loss
from apo_core.policy import ApoVlaConfig, ApoVlaPolicy, instruction_vocab
from apo_core.policy.modeling_apo_vla import state_input
from apo_core.training.run import (
    Notice,
    ProgressCallback,
    observation_inputs,
    optimise,
    random_shift,
    resolve_device,
    run_identity,
)


def build_policy(
    steps: Steps, policy_config: PolicyConfig, *, image_size: int, action_dim: int, gripper_dim: int, seed: int
) -> ApoVlaPolicy:
    """A randomly initialised VLA whose action and state statistics come from the expert steps."""
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
    on_notice: Notice | None = None,
) -> ApoVlaPolicy:
    """Round 0: NLL of the expert action tokens + aux_weight · MSE of the regressed action."""
    device = resolve_device(config.device)
    expert = np.flatnonzero(expert_mask(steps))
    normalized = torch.from_numpy(policy.action_tokenizer.normalize(steps.actions).astype(np.float32))
    bins = torch.from_numpy(policy.action_tokenizer.encode(steps.actions))
    batch_size = min(config.bc_batch_size, len(expert))
    policy.to(device)

    def loss_at(step: int):
        rng = np.random.default_rng([config.seed, step])
        index = rng.choice(expert, size=batch_size, replace=False)
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        pixels, state, instructions = observation_inputs(policy, steps, index, device)
        target = bins[index].to(device)
        output = policy(random_shift(pixels, config.augment_shift, generator), state, instructions, target)
        nll, _ = nll_loss(policy.token_logps(output, target))
        aux = F.mse_loss(output.aux_actions, normalized[index].to(device))
        return nll + config.aux_weight * aux, {"nll": nll.detach(), "aux_mse": aux.detach()}

    optimise(policy, loss_at, identity=run_identity(steps, "bc", config, config.bc_steps), lr=config.bc_lr,
             warmup=config.warmup_steps, work_dir=Path(work_dir), checkpoint_every=config.checkpoint_every,
             threads=config.threads, on_step=on_step, on_notice=on_notice)
    return policy.to("cpu")
