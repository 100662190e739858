"""A policy deployed as an :class:`apo_core.actors.Actor`: observation in, native action out."""

from __future__ import annotations

import numpy as np
import torch

from apo_core.envs.base import Observation
from apo_core.policy.interface import Policy


class VlaActor:
    def __init__(self, policy: Policy, instruction: str, name: str = "vla"):
        self.policy = policy.eval()
        self.name = name
        self.instruction = instruction
        self.needs_image = policy.needs_image

    def reset(self, seed: int) -> None:
        """Greedy decoding is deterministic and the policy is stateless between steps."""

    @torch.no_grad()
    def act_batch(self, observations: list[Observation]) -> np.ndarray:
        """One batched greedy decode for several episodes played in lockstep: [B, D], the first
        action of each predicted chunk (re-planned every step).

        A token sequence that does not decode gives no motion (zeros) for that step."""
        images = np.stack([o.image for o in observations]) if self.needs_image else None
        inputs = self.policy.observations(images, np.stack([o.state for o in observations]),
                                          np.stack([o.environment_state for o in observations]),
                                          [self.instruction] * len(observations))
        chunks, decoded = self.policy.decode_actions(self.policy.generate(inputs))
        actions = chunks[:, 0]
        actions[~decoded] = 0.0
        return actions

    def act(self, observation: Observation) -> np.ndarray:
        return self.act_batch([observation])[0]
