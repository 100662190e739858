"""Inputs both policies share: the low-dim state they read and its statistics over the
demonstrations, the instruction's word-level tokenizer (no download), and random-shift
image augmentation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedTokenizerFast

from apo_core.policy.configuration import GOAL_DIMS

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[BOA]"]


def state_input(state_inputs: str, proprio: torch.Tensor, environment_state: torch.Tensor) -> torch.Tensor:
    """The low-dim policy input: proprio [+ goal position | + every object pose and the goal]."""
    if state_inputs == "proprio":
        return proprio
    if state_inputs == "proprio+goal":
        return torch.cat([proprio, environment_state[:, -GOAL_DIMS:]], dim=-1)
    return torch.cat([proprio, environment_state], dim=-1)


def standardisation(values: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-dim mean and std over the rows; the std floored so that a constant dim (a fixed
    goal) stays finite."""
    return values.mean(dim=0).tolist(), values.std(dim=0).clamp_min(1e-3).tolist()


def demonstrated_state(state_inputs: str, demonstrations) -> dict:
    """What a fresh policy's saved config takes from the demonstrations' states: their dims
    and the selected state's statistics (it is standardised with them)."""
    proprio = torch.from_numpy(demonstrations.proprio)
    environment = torch.from_numpy(demonstrations.environment_state)
    mean, std = standardisation(state_input(state_inputs, proprio, environment))
    return {"proprio_dim": proprio.shape[1], "environment_state_dim": environment.shape[1], "state_mean": mean,
            "state_std": std}


def instruction_vocab(instructions: list[str]) -> list[str]:
    words = sorted({word for text in instructions for word in text.lower().split()})
    return SPECIAL_TOKENS + words


def build_instruction_tokenizer(vocab: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``vocab`` (no download): ~5 tokens per instruction."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.normalizers import Lowercase
    from tokenizers.pre_tokenizers import Whitespace

    core = Tokenizer(WordLevel({word: i for i, word in enumerate(vocab)}, unk_token="[UNK]"))
    core.normalizer = Lowercase()
    core.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]")


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
