"""Configuration of the π0-FAST-layout VLA (LeRobot style: next to the model): its
``policy:`` section (``kind: paligemma-fast``) and the dataclass saved as its config.json.

PaliGemma (a SigLIP vision tower and a Gemma decoder, transformers' classes) built from
this config, no download: the image's patch tokens, the instruction and the discretised
state form the prefix (attended bidirectionally); the FAST tokens of the next
``chunk_size`` actions, then EOS, form the causal suffix (``token_type_ids = 1``). The
defaults are tiny (~0.7M parameters) for a CPU; the same classes load any size from a
local checkpoint (``policy.pretrained``).

The vocabulary, in order: the specials, the instruction's words, ``state_bins`` state
tokens, the FAST tokens, EOS. The policy's distribution over an action token is taken
over the FAST tokens and EOS only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field

from apo_core.policy.configuration import PolicySection, SavedPolicyConfig, StateInputs

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[BOA]", "[IMG]"]


class PaliGemmaFastPolicyConfig(PolicySection):
    """The π0-FAST layout (apo_core/policy/modeling_paligemma_fast.py). PaliGemma reads the
    image (its SigLIP tower, whenever use_image is true), the instruction and the discretised
    state, and emits the FAST tokens of the next chunk_size actions and EOS; its language
    model is a Gemma of hidden_size × decoder_layers (docs/policies.md §3)."""

    kind: Literal["paligemma-fast"] = Field("paligemma-fast", description="paligemma-fast: PaliGemma emitting FAST "
                                            "tokens of an action chunk (docs/policies.md §3)")
    fast_scale: float = Field(10.0, gt=0, description="DCT coefficients are rounded after scaling by this (larger: "
                              "finer, more tokens)")
    fast_vocab_size: int = Field(256, ge=16, description="FAST tokens (BPE vocabulary) fitted on the "
                                 "demonstrations")

    @property
    def tiles_image(self) -> bool:
        return self.use_image


@dataclass
class PaliGemmaFastConfig(SavedPolicyConfig):
    """The saved config (config.json): the section's sizes, the world's image size and
    action dims, the demonstrations' state statistics and words, the fitted FAST vocabulary."""

    use_image: bool = True
    image_size: int = 64
    patch_size: int = 8
    vision_hidden_size: int = 128
    vision_layers: int = 2
    vision_heads: int = 2
    vision_intermediate_size: int = 256
    hidden_size: int = 128
    text_layers: int = 2
    text_heads: int = 2
    head_dim: int = 64
    text_intermediate_size: int = 256
    proprio_dim: int = 4
    environment_state_dim: int = 17
    state_inputs: StateInputs = "proprio+goal"
    # the state, standardised with the demonstrations' statistics, discretised over ±3 std
    state_bins: int = 256
    state_mean: list[float] | None = None
    state_std: list[float] | None = None
    max_instruction_tokens: int = 8
    # the specials and the instruction's words; set when the policy is built
    instruction_vocab: list[str] = field(default_factory=list)
    # actions: a chunk of chunk_size steps as FAST tokens + EOS, padded to max_action_tokens
    # (chunk_size × action_dim + 1: BPE merges only shorten the coefficients)
    action_dim: int = 4
    chunk_size: int = 4
    fast_vocab_size: int = 256
    max_action_tokens: int = 17

    @classmethod
    def from_section(cls, section: PaliGemmaFastPolicyConfig, **derived) -> PaliGemmaFastConfig:
        """A fresh policy's config: the section's sizes (decoder_layers: the Gemma's), its
        MLPs twice their widths and two heads' width."""
        return super().from_section(section, vision_intermediate_size=2 * section.vision_hidden_size,
                                    text_layers=section.decoder_layers, text_intermediate_size=2 * section.hidden_size,
                                    head_dim=section.hidden_size // 2, **derived)

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2 if self.use_image else 0

    @property
    def state_offset(self) -> int:
        return len(self.instruction_vocab)

    @property
    def fast_offset(self) -> int:
        return self.state_offset + self.state_bins

    @property
    def eos_id(self) -> int:
        return self.fast_offset + self.fast_vocab_size

    @property
    def vocab_size(self) -> int:
        return self.eos_id + 1

    @property
    def prefix_length(self) -> int:
        return self.image_tokens + 1 + self.max_instruction_tokens + self.state_dim + 1

