"""Configuration of the π0-FAST-layout VLA (LeRobot style: a dataclass next to the model).

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

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[BOA]", "[IMG]"]


@dataclass
class PaliGemmaFastConfig:
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
    state_inputs: Literal["proprio", "proprio+goal", "proprio+objects"] = "proprio+goal"
    # the state, standardised with the demonstrations' statistics, discretised over ±3 std
    state_bins: int = 256
    state_mean: list[float] | None = None
    state_std: list[float] | None = None
    max_instruction_tokens: int = 8
    # actions: a chunk of chunk_size steps as FAST tokens + EOS, padded to max_action_tokens
    # (chunk_size × action_dim + 1: BPE merges only shorten the coefficients)
    action_dim: int = 4
    chunk_size: int = 4
    fast_vocab_size: int = 256
    max_action_tokens: int = 17
    instruction_vocab: list[str] = field(default_factory=list)

    @property
    def state_dim(self) -> int:
        extra = {"proprio": 0, "proprio+goal": 3, "proprio+objects": self.environment_state_dim}[self.state_inputs]
        return self.proprio_dim + extra

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

    def save(self, path: Path, kind: str) -> None:
        path.write_text(json.dumps({"kind": kind, **asdict(self)}, indent=2))

    @classmethod
    def load(cls, path: Path) -> PaliGemmaFastConfig:
        data = json.loads(path.read_text())
        data.pop("kind", None)
        return cls(**data)
