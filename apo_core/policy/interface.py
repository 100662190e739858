"""What the loop needs from any policy: one interface, several implementations.

The trainers, the evaluator, the robots and the CLI use only :class:`Policy`. A policy
maps observations (image, proprio, environment state, instruction) to a sequence of
discrete action tokens, and back:

* it is built from the config and the demonstrations, or loaded from a directory that
  also holds its action statistics (normalisation is part of the policy);
* it encodes action chunks (the next H actions; H = 1 for one action) to token ids and
  decodes ids back, saying which rows could not be decoded (a FAST sequence can be
  malformed);
* it scores given action tokens (per-token log-probs, teacher-forced), optionally with a
  mismatched pair scored without a graph (z0, docs/apo.md §5);
* it decodes greedily, in batches;
* it names its LoRA targets.

Token sequences may differ in length: :class:`ActionTokens` carries a mask, and every
per-token tensor is 0 where the mask is False.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class ActionTokens:
    """Action token ids [N, T] (or [N, K, T] for K candidates per observation) and the mask
    of the positions that hold a token (None: every position does)."""

    ids: torch.Tensor
    mask: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index) -> ActionTokens:
        return ActionTokens(self.ids[index], None if self.mask is None else self.mask[index])

    def to(self, device: torch.device | str) -> ActionTokens:
        return ActionTokens(self.ids.to(device), None if self.mask is None else self.mask.to(device))

    def stack(self, other: ActionTokens) -> ActionTokens:
        """Two candidates per observation: [N, T] and [N, T] -> [N, 2, T]."""
        masks = None if self.mask is None else torch.stack([self.mask, other.mask], dim=1)
        return ActionTokens(torch.stack([self.ids, other.ids], dim=1), masks)


@dataclass
class ActionScores:
    """A policy's teacher-forced view of given action tokens.

    ``token_logps`` [N, T]: log π(y_t | o, y_<t), 0 at masked positions; ``greedy_ids``
    [N, T]: the argmax token at each position (for the L1 weights, docs/apo.md §5);
    ``logprobs`` [N, T, V]: the full distributions, only when asked for (exact KL);
    ``aux_actions`` [N, D]: a regression head's normalised action, where the policy has
    one; ``aux_objects`` [N, E]: the image's regressed standardised environment state (a
    training-only target, see ``object_targets``), where it has that head; ``mismatched_logps`` [N, T]: the mismatched pair's token log-probs, scored without
    a graph, when asked for.
    """

    token_logps: torch.Tensor
    greedy_ids: torch.Tensor
    logprobs: torch.Tensor | None = None
    aux_actions: torch.Tensor | None = None
    aux_objects: torch.Tensor | None = None
    mismatched_logps: torch.Tensor | None = None


class Observations(Protocol):
    """A batch of observations in a policy's own input form (see :meth:`Policy.observations`)."""

    def __len__(self) -> int: ...


class ActionNormalizer(Protocol):
    """Per-dim action statistics saved with the policy (docs/apo.md §4)."""

    action_dim: int

    def normalize(self, actions: np.ndarray) -> np.ndarray: ...

    def scale(self, actions: np.ndarray) -> np.ndarray: ...

    def unnormalize(self, normalized: np.ndarray) -> np.ndarray: ...


class Policy(nn.Module, ABC):
    """A vision-language-action policy over discrete action tokens."""

    kind: ClassVar[str]  # `policy.kind` in the config, and "kind" in the saved config.json
    lora_targets: ClassVar[str]  # a regex over module names: the language model's linear layers
    vision_lora_targets: ClassVar[str | None]  # the vision tower's, or None without one
    config: Any  # the implementation's own configuration dataclass

    # ----- building and persistence ------------------------------------------------
    @classmethod
    @abstractmethod
    def build(cls, policy_config, demonstrations, *, image_size: int, action_dim: int, gripper_dim: int,
              seed: int) -> Policy:
        """A fresh policy whose action and state statistics come from the demonstrations
        (a :class:`apo_core.data.steps.Steps` of expert steps)."""

    @classmethod
    @abstractmethod
    def from_pretrained(cls, directory: str | Path) -> Policy:
        """Load a saved policy; raises FileNotFoundError naming what is missing."""

    @abstractmethod
    def save_pretrained(self, directory: str | Path) -> None:
        """Weights, config (with ``kind``) and action statistics into ``directory``."""

    # ----- actions and tokens ------------------------------------------------------
    @property
    @abstractmethod
    def action_normalizer(self) -> ActionNormalizer:
        """The action statistics the policy normalises with (also the label filters')."""

    @property
    @abstractmethod
    def undesirable_skip(self) -> list[int] | None:
        """The token positions left out of an undesirable sample's reward (the gripper's),
        or None where no token holds the gripper alone (docs/apo.md §5)."""

    @property
    def chunk_size(self) -> int:
        """H: the steps of one predicted action chunk (1: one action per decision)."""
        return 1

    @abstractmethod
    def encode_actions(self, actions: np.ndarray) -> ActionTokens:
        """Native action chunks [N, H, D] -> token ids (on the CPU)."""

    @abstractmethod
    def decode_normalized(self, tokens: ActionTokens) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids -> normalised action chunks [N, H, D] and a bool [N]: False where a row
        cannot be decoded (its actions are then meaningless), on the ids' device."""

    def decode_actions(self, tokens: ActionTokens) -> tuple[np.ndarray, np.ndarray]:
        """Token ids -> native action chunks [N, H, D] (float32) and which rows decoded."""
        normalized, decoded = self.decode_normalized(tokens)
        actions = self.action_normalizer.unnormalize(normalized.cpu().numpy())
        return actions.astype(np.float32), decoded.cpu().numpy()

    # ----- observations ------------------------------------------------------------
    @property
    @abstractmethod
    def needs_image(self) -> bool:
        """Whether the policy looks at the camera (the world renders only then)."""

    @abstractmethod
    def observations(self, images: np.ndarray | None, proprio: np.ndarray, environment_state: np.ndarray,
                     instructions: list[str], device: torch.device | str = "cpu") -> Observations:
        """A batch of raw observations as this policy's inputs, on ``device``."""

    def augment(self, observations: Observations, shift: int, generator: torch.Generator) -> Observations:
        """Training-time augmentation (random shift of the image); none by default."""
        return observations

    # ----- scoring and acting --------------------------------------------------------
    @abstractmethod
    def score_actions(self, observations: Observations, tokens: ActionTokens, *,
                      mismatched: ActionTokens | None = None, full: bool = False) -> ActionScores:
        """Teacher-forced scores of one token sequence per observation, with a graph."""

    @abstractmethod
    def score_candidates(self, observations: Observations, tokens: ActionTokens,
                         full: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token log-probs [N, K, T] of K candidate sequences per observation ([N, K, T]
        ids), and with ``full`` the first candidate's distributions [N, T, V]."""

    @abstractmethod
    def generate(self, observations: Observations) -> ActionTokens:
        """Greedy decoding of the next action's tokens, batched."""


def to_device(tensor: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A CPU tensor onto ``device``; through pinned memory, without blocking, onto a GPU."""
    if torch.device(device).type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def observations_of(policy: Policy, steps, index: np.ndarray, device: torch.device | str = "cpu") -> Observations:
    """The policy's inputs for the recorded steps at ``index`` (a :class:`Steps` table)."""
    images = steps.images[index] if policy.needs_image else None
    return policy.observations(images, steps.proprio[index], steps.environment_state[index],
                               list(steps.instructions[index]), device)
