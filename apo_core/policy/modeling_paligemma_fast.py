"""A π0-FAST-layout VLA: PaliGemma over an image, an instruction and the discretised
state, emitting the FAST tokens of the next action chunk (``policy.kind: paligemma-fast``).

    [IMG]×n  [BOS] instruction  state tokens  [BOA] │ FAST tokens of a_t … a_{t+H-1}  EOS
    └──────────── prefix: bidirectional ────────────┘ └───── suffix: causal, padded ─────┘

The suffix carries ``token_type_ids = 1``: without them PaliGemma attends bidirectionally
over it and an earlier token's log-prob would depend on later ones. Sequences differ in
length; the mask marks the tokens (EOS included), and every per-token quantity is 0 past
it. The gripper is not a token of its own (the DCT mixes a dim's steps, BPE merges dims),
so the gripper exception of docs/apo.md §5 does not apply (``undesirable_skip`` is None).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

from apo_core.action_tokenizer import ActionTokenizer
from apo_core.fast_tokenizer import FastTokenizer
from apo_core.policy.configuration_paligemma_fast import SPECIALS, PaliGemmaFastConfig, PaliGemmaFastPolicyConfig
from apo_core.policy.inputs import (
    SPECIAL_TOKENS,
    build_instruction_tokenizer,
    demonstrated_state,
    instruction_vocab,
    random_shift,
    state_input,
)
from apo_core.policy.interface import CONFIG_FILE, WEIGHTS_FILE, ActionScores, ActionTokens, to_device
from apo_core.policy.modeling_apo_vla import ACTION_STATS_FILE
from apo_core.policy.pretrained import PretrainedPolicy

FAST_FILE = "fast_tokenizer.json"
# LoRA on every linear layer of the language model (the authors' "all linear").
LANGUAGE_MODEL_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
VISION_LORA_TARGETS = r".*vision_tower.*\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)"


@dataclass
class PrefixInputs:
    """The prefix of each observation: token ids [B, P] and pixels (None without images)."""

    ids: torch.Tensor
    pixels: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.ids)


def _paligemma(config: PaliGemmaFastConfig) -> PaliGemmaForConditionalGeneration:
    image_token = SPECIALS.index("[IMG]")
    return PaliGemmaForConditionalGeneration(PaliGemmaConfig(
        vision_config=dict(model_type="siglip_vision_model", hidden_size=config.vision_hidden_size,
                           intermediate_size=config.vision_intermediate_size, num_hidden_layers=config.vision_layers,
                           num_attention_heads=config.vision_heads, image_size=config.image_size,
                           patch_size=config.patch_size, vision_use_head=False),
        text_config=dict(model_type="gemma", hidden_size=config.hidden_size,
                         intermediate_size=config.text_intermediate_size, num_hidden_layers=config.text_layers,
                         num_attention_heads=config.text_heads, num_key_value_heads=1, head_dim=config.head_dim,
                         vocab_size=config.vocab_size,
                         max_position_embeddings=config.prefix_length + config.max_action_tokens + 1),
        image_token_index=image_token, projection_dim=config.hidden_size, vocab_size=config.vocab_size))


class PaliGemmaFastPolicy(PretrainedPolicy):
    kind = "paligemma-fast"
    config_class = PaliGemmaFastPolicyConfig
    lora_targets = LANGUAGE_MODEL_LORA_TARGETS
    vision_lora_targets = VISION_LORA_TARGETS

    def __init__(self, config: PaliGemmaFastConfig, normalizer: ActionTokenizer, fast: FastTokenizer):
        super().__init__()
        if fast.horizon != config.chunk_size or fast.action_dim != config.action_dim:
            raise ValueError(f"FAST tokenizer of {fast.horizon} x {fast.action_dim}, config "
                             f"{config.chunk_size} x {config.action_dim}")
        self.config, self.normalizer, self.fast = config, normalizer, fast
        self.text_tokenizer = build_instruction_tokenizer(config.instruction_vocab)
        self.model = _paligemma(config)
        self.register_statistics("state", config.state_mean, config.state_std, config.state_dim)

    @classmethod
    def build(cls, policy_config: PaliGemmaFastPolicyConfig, demonstrations, *, image_size: int, action_dim: int,
              gripper_dim: int, seed: int) -> PaliGemmaFastPolicy:
        """From the section; the action quantiles, the FAST tokenizer (fitted on the
        demonstrations' normalised chunks) and the state's statistics from the demonstrations."""
        from apo_core.data.steps import action_chunks

        section = cls.section(policy_config)
        horizon = section.chunk_size
        normalizer = ActionTokenizer.fit(demonstrations.actions)
        chunks = normalizer.normalize(action_chunks(demonstrations.actions, demonstrations.episode_ids, horizon))
        fast = FastTokenizer.fit(chunks, scale=section.fast_scale, vocab_size=section.fast_vocab_size)
        words = instruction_vocab(sorted(set(demonstrations.instructions)))[len(SPECIAL_TOKENS):]
        config = PaliGemmaFastConfig.from_section(
            section, image_size=image_size, action_dim=action_dim, fast_vocab_size=fast.vocab_size,
            max_action_tokens=horizon * action_dim + 1, instruction_vocab=SPECIALS + words,
            **demonstrated_state(section.state_inputs, demonstrations))
        torch.manual_seed(seed)
        return cls(config, normalizer, fast)

    # ----- the policy interface -----------------------------------------------------
    @property
    def action_normalizer(self) -> ActionTokenizer:
        return self.normalizer

    @property
    def undesirable_skip(self) -> list[int] | None:
        return None

    def encode_actions(self, actions: np.ndarray) -> ActionTokens:
        """Chunks [N, H, D] -> FAST ids + EOS, padded to ``max_action_tokens`` (H × D + 1: BPE
        merges only shorten the H × D coefficients)."""
        length = self.config.max_action_tokens
        ids = torch.zeros(len(actions), length, dtype=torch.long)
        mask = torch.zeros(len(actions), length, dtype=torch.bool)
        for row, tokens in enumerate(self.fast.encode(self.normalizer.normalize(actions))):
            sequence = [self.config.fast_offset + t for t in tokens] + [self.config.eos_id]
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = True
        return ActionTokens(ids, mask)

    def decode_normalized(self, tokens: ActionTokens) -> tuple[torch.Tensor, torch.Tensor]:
        """The FAST ids before the first EOS (within the mask) -> normalised chunks [N, H, D];
        a row without EOS does not decode."""
        eos, lists = self.config.eos_id, []
        for ids, valid in zip(tokens.ids.tolist(), self._mask(tokens).tolist()):
            sequence = [token for token, keep in zip(ids, valid) if keep]
            sequence = sequence[: sequence.index(eos)] if eos in sequence else []
            lists.append([token - self.config.fast_offset for token in sequence])
        chunks, decoded = self.fast.decode(lists)
        device = tokens.ids.device
        return torch.from_numpy(chunks.astype(np.float32)).to(device), torch.from_numpy(decoded).to(device)

    def observations(self, images: np.ndarray | None, proprio: np.ndarray, environment_state: np.ndarray,
                     instructions: list[str], device: torch.device | str = "cpu") -> PrefixInputs:
        config = self.config
        state = state_input(config.state_inputs, torch.from_numpy(proprio), torch.from_numpy(environment_state))
        standardised = (state - self.state_mean.cpu()) / self.state_std.cpu()
        bins = ((standardised.clamp(-3, 3) + 3) / 6 * (config.state_bins - 1)).round().long()
        words = torch.tensor([self._instruction_ids(text) for text in instructions], dtype=torch.long)
        batch = len(state)
        ids = torch.cat([torch.full((batch, config.image_tokens), SPECIALS.index("[IMG]")),
                         torch.full((batch, 1), SPECIALS.index("[BOS]")), words, bins + config.state_offset,
                         torch.full((batch, 1), SPECIALS.index("[BOA]"))], dim=1)
        pixels = (torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
                  if config.use_image else None)
        return PrefixInputs(to_device(ids, device), None if pixels is None else to_device(pixels, device))

    def augment(self, observations: PrefixInputs, shift: int, generator: torch.Generator) -> PrefixInputs:
        return replace(observations, pixels=random_shift(observations.pixels, shift, generator))

    def score_actions(self, observations: PrefixInputs, tokens: ActionTokens, *,
                      mismatched: ActionTokens | None = None, full: bool = False) -> ActionScores:
        logprobs = self._suffix_logprobs(observations, tokens)
        mask = self._mask(tokens)
        mismatched_logps = None
        if mismatched is not None:
            with torch.no_grad():
                partner = self._suffix_logprobs(observations, mismatched)
                mismatched_logps = self._picked(partner, mismatched) * self._mask(mismatched)
        return ActionScores(token_logps=self._picked(logprobs, tokens) * mask,
                            greedy_ids=logprobs.detach().argmax(dim=-1) + self.config.fast_offset,
                            logprobs=logprobs if full else None, mismatched_logps=mismatched_logps)

    def score_candidates(self, observations: PrefixInputs, tokens: ActionTokens,
                         full: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, candidates, length = tokens.ids.shape
        repeated = PrefixInputs(observations.ids.repeat_interleave(candidates, dim=0),
                                None if observations.pixels is None
                                else observations.pixels.repeat_interleave(candidates, dim=0))
        flat = ActionTokens(tokens.ids.reshape(-1, length), tokens.mask.reshape(-1, length))
        logprobs = self._suffix_logprobs(repeated, flat)
        logps = (self._picked(logprobs, flat) * self._mask(flat)).reshape(batch, candidates, length)
        return logps, (logprobs.reshape(batch, candidates, length, -1)[:, 0] if full else None)

    @torch.no_grad()
    def generate(self, observations: PrefixInputs) -> ActionTokens:
        """Greedy decoding with a KV cache until every row has emitted EOS (or the cap)."""
        config, batch = self.config, len(observations)
        prefix = observations.ids
        out = self.model(input_ids=prefix, pixel_values=observations.pixels, attention_mask=torch.ones_like(prefix),
                         token_type_ids=torch.zeros_like(prefix), use_cache=True, logits_to_keep=1)
        ids = torch.zeros(batch, config.max_action_tokens, dtype=torch.long, device=prefix.device)
        mask = torch.zeros_like(ids, dtype=torch.bool)
        running = torch.ones(batch, dtype=torch.bool, device=prefix.device)
        for position in range(config.max_action_tokens):
            token = self._action_logprobs(out.logits[:, -1]).argmax(dim=-1) + config.fast_offset
            ids[:, position], mask[:, position] = torch.where(running, token, 0), running
            running = running & (token != config.eos_id)
            if not running.any() or position + 1 == config.max_action_tokens:
                break
            seen = prefix.shape[1] + position + 1
            out = self.model(input_ids=token.unsqueeze(1), past_key_values=out.past_key_values, use_cache=True,
                             attention_mask=torch.ones(batch, seen, dtype=torch.long, device=prefix.device))
        return ActionTokens(ids, mask)

    # ----- internals ----------------------------------------------------------------
    def _instruction_ids(self, text: str) -> list[int]:
        ids = self.text_tokenizer(text, add_special_tokens=False)["input_ids"][: self.config.max_instruction_tokens]
        return ids + [SPECIALS.index("[PAD]")] * (self.config.max_instruction_tokens - len(ids))

    def _action_logprobs(self, logits: torch.Tensor) -> torch.Tensor:
        """log π over the FAST tokens and EOS (the action vocabulary), float32."""
        return logits[..., self.config.fast_offset : self.config.eos_id + 1].float().log_softmax(dim=-1)

    def _suffix_logprobs(self, observations: PrefixInputs, tokens: ActionTokens) -> torch.Tensor:
        """Teacher-forced log π over the action vocabulary at each suffix position: [N, T, V]."""
        prefix, suffix = observations.ids, tokens.ids
        input_ids = torch.cat([prefix, suffix[:, :-1]], dim=1)
        token_types = torch.cat([torch.zeros_like(prefix), torch.ones_like(suffix[:, :-1])], dim=1)
        attention = torch.cat([torch.ones_like(prefix), self._mask(tokens)[:, :-1].long()], dim=1)
        out = self.model(input_ids=input_ids, pixel_values=observations.pixels, attention_mask=attention,
                         token_type_ids=token_types, logits_to_keep=suffix.shape[1])
        return self._action_logprobs(out.logits)

    def _picked(self, logprobs: torch.Tensor, tokens: ActionTokens) -> torch.Tensor:
        index = (tokens.ids - self.config.fast_offset).clamp(0, logprobs.shape[-1] - 1)
        return logprobs.gather(-1, index.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def _mask(tokens: ActionTokens) -> torch.Tensor:
        return tokens.mask if tokens.mask is not None else torch.ones_like(tokens.ids, dtype=torch.bool)

    # ----- persistence --------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().contiguous() for name, tensor in self.model.state_dict().items()
                 if name != "lm_head.weight"}  # tied to the input embeddings
        save_file(state, directory / WEIGHTS_FILE)
        self.config.save(directory / CONFIG_FILE, kind=self.kind)
        (directory / ACTION_STATS_FILE).write_text(json.dumps(self.normalizer.to_dict(), indent=2))
        (directory / FAST_FILE).write_text(json.dumps(self.fast.to_dict()))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> PaliGemmaFastPolicy:
        directory = Path(directory)
        needed = (WEIGHTS_FILE, CONFIG_FILE, ACTION_STATS_FILE, FAST_FILE)
        missing = [name for name in needed if not (directory / name).exists()]
        if missing:
            raise FileNotFoundError(f"{directory}: not a saved policy, missing {missing}")
        config = PaliGemmaFastConfig.load(directory / CONFIG_FILE)
        normalizer = ActionTokenizer.from_dict(json.loads((directory / ACTION_STATS_FILE).read_text()))
        fast = FastTokenizer.from_dict(json.loads((directory / FAST_FILE).read_text()))
        policy = cls(config, normalizer, fast)
        result = policy.model.load_state_dict(load_file(directory / WEIGHTS_FILE), strict=False)
        missing = set(result.missing_keys) - {"lm_head.weight"}  # tied to the input embeddings
        if missing or result.unexpected_keys:
            raise ValueError(f"{directory / WEIGHTS_FILE}: not this model's weights (missing {sorted(missing)[:3]}, "
                             f"unexpected {result.unexpected_keys[:3]})")
        return policy.eval()
