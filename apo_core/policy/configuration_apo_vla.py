"""Configuration of the tiny VLA (LeRobot style: next to the model): its ``policy:``
section (``kind: apo-vla``) and the dataclass saved as its config.json.

Sizes are chosen for a 2-core CPU: a Llama decoder (2 layers, width 128) emits one token
per action dim and step of a chunk of H actions, conditioned on the instruction and the
low-dim state, and optionally on image tokens: K spatial-softmax keypoints of a small conv
stack (``vision_encoder: conv``, conv_encoder.py) or the patches of a SigLIP tower
(``siglip``). Step and decoding costs are in benchmarks/README.md (`step_cost.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, model_validator

from apo_core.policy.configuration import PolicySection, SavedPolicyConfig, StateInputs


class ApoVlaPolicyConfig(PolicySection):
    """The tiny VLA (apo_core/policy/modeling_apo_vla.py). A Llama decoder emits one token
    per action dim and chunk step (OpenVLA-style bins), reading the camera through a conv +
    spatial-softmax encoder or a SigLIP tower, or the low-dim state alone (docs/policies.md
    §6)."""

    kind: Literal["apo-vla"] = Field("apo-vla", description="apo-vla: the tiny VLA, one token per action dim "
                                     "(OpenVLA-style bins); paligemma-fast has its own fields (docs/policies.md)")
    estimate_objects: bool = Field(True, description="with an image: the state token also reads the image's "
                                   "estimate of the object poses (the object head, trained by "
                                   "train.aux_object_weight; the true poses are never read)")
    vision_encoder: Literal["conv", "siglip"] = Field(
        "conv", description="the image encoder. conv: a small conv stack whose spatial-softmax keypoints are the "
        "image tokens (robomimic's VisualCore; resolves a 2-pixel object); siglip: a SigLIP tower, one token per "
        "patch (patch_size, vision_layers)")
    conv_channels: int = Field(32, ge=4, description="conv encoder: channels of its four 3×3 layers")
    keypoints: int = Field(16, ge=1, description="conv encoder: spatial-softmax keypoints, one image token each")

    @model_validator(mode="after")
    def _estimates_need_the_image(self) -> ApoVlaPolicyConfig:
        if self.estimate_objects and not self.use_image:
            raise ValueError("estimate_objects needs use_image: true (the estimate is read from the image)")
        return self

    @property
    def tiles_image(self) -> bool:
        return self.use_image and self.vision_encoder == "siglip"


@dataclass
class ApoVlaConfig(SavedPolicyConfig):
    """The saved config (config.json): the section's sizes, the world's image size and
    action dims, the demonstrations' state statistics and words."""

    # observation. Without the image (use_image=False) the model has no vision tower and
    # the world need not render while the policy acts: ~10x cheaper episodes on a CPU.
    use_image: bool = True
    image_size: int = 64
    patch_size: int = 16
    proprio_dim: int = 4
    environment_state_dim: int = 17
    # Which low-dim state the policy sees besides the image. "proprio+goal" adds the goal
    # position (the target the instruction refers to); "proprio+objects" adds the
    # privileged object poses too, which makes behaviour cloning far easier.
    state_inputs: StateInputs = "proprio+goal"
    # Per-dim mean and std of the selected state over the expert demonstrations: the state
    # is standardised before its projection (raw positions vary by centimetres, which a
    # freshly initialised MLP barely resolves). None: fed raw.
    state_mean: list[float] | None = None
    state_std: list[float] | None = None
    # Per-dim mean and std of the environment state (object poses + goal) over the
    # demonstrations: standardised, it is the target of the image's auxiliary object head
    # (train.aux_object_weight); the policy never reads it as an input unless state_inputs says so.
    environment_state_mean: list[float] | None = None
    environment_state_std: list[float] | None = None
    # True: the state token also reads the image's estimate of the environment state (the
    # object head's output, detached): the policy uses where it sees the objects as the
    # privileged policy uses the poses. The head must be trained (train.aux_object_weight).
    estimate_objects: bool = False
    max_instruction_tokens: int = 8
    # image encoder: "conv" (conv stack + spatial-softmax keypoints, one token per keypoint)
    # or "siglip" (a SigLIP tower, one token per patch)
    vision_encoder: Literal["conv", "siglip"] = "siglip"
    conv_channels: int = 32
    keypoints: int = 16
    vision_hidden_size: int = 64
    vision_layers: int = 2
    vision_heads: int = 2
    vision_intermediate_size: int = 128
    # decoder (Llama)
    hidden_size: int = 128
    decoder_layers: int = 2
    decoder_heads: int = 4
    decoder_intermediate_size: int = 256
    # actions: a chunk of chunk_size steps, one token per dim and step (H × D tokens)
    chunk_size: int = 1
    action_dim: int = 4
    gripper_dim: int = 3
    n_action_bins: int = 256
    # vocabulary of instruction words (specials first); set when the policy is built
    instruction_vocab: list[str] = field(default_factory=list)

    @property
    def state_token_inputs(self) -> int:
        """What the state token's MLP reads: the state, and the image's object estimate if asked."""
        return self.state_dim + (self.environment_state_dim if self.estimate_objects else 0)

    @property
    def image_tokens(self) -> int:
        if not self.use_image:
            return 0
        return self.keypoints if self.vision_encoder == "conv" else (self.image_size // self.patch_size) ** 2

    @property
    def action_tokens(self) -> int:
        return self.chunk_size * self.action_dim

    @classmethod
    def from_section(cls, section: ApoVlaPolicyConfig, **derived) -> ApoVlaConfig:
        """A fresh policy's config: the section's sizes, its MLPs twice their widths."""
        return super().from_section(section, vision_intermediate_size=2 * section.vision_hidden_size,
                                    decoder_intermediate_size=2 * section.hidden_size, **derived)
