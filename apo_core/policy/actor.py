"""The VLA deployed as an :class:`apo_core.actors.Actor`: observation in, native action out."""

from __future__ import annotations

import numpy as np
import torch

from apo_core.envs.base import Observation
from apo_core.policy.modeling_apo_vla import ApoVlaPolicy


class VlaActor:
    def __init__(self, policy: ApoVlaPolicy, instruction: str, name: str = "vla"):
        self.policy = policy.eval()
        self.name = name
        self._instruction_ids = policy.instruction_ids([instruction])
        self.needs_image = policy.config.use_image

    def reset(self, seed: int) -> None:
        """Greedy decoding is deterministic and the policy is stateless between steps."""

    @torch.no_grad()
    def act_batch(self, observations: list[Observation]) -> np.ndarray:
        """One batched greedy decode for several episodes played in lockstep: [B, D]."""
        pixels = (self.policy.pixels(torch.from_numpy(np.stack([o.image for o in observations])))
                  if self.needs_image else None)
        state = self.policy.select_state(torch.from_numpy(np.stack([o.state for o in observations])),
                                         torch.from_numpy(np.stack([o.environment_state for o in observations])))
        bins = self.policy.generate(pixels, state, self._instruction_ids.expand(len(observations), -1))
        return self.policy.action_tokenizer.decode(bins.numpy()).astype(np.float32)

    @torch.no_grad()
    def act(self, observation: Observation) -> np.ndarray:
        pixels = self.policy.pixels(torch.from_numpy(observation.image).unsqueeze(0)) if self.needs_image else None
        state = self.policy.select_state(
            torch.from_numpy(observation.state).unsqueeze(0), torch.from_numpy(observation.environment_state).unsqueeze(0)
        )
        bins = self.policy.generate(pixels, state, self._instruction_ids)
        return self.policy.action_tokenizer.decode(bins[0].numpy()).astype(np.float32)
