"""A tiny autoregressive vision-language-action model built from transformers classes.

    image ──conv + spatial softmax──► K keypoint tokens ─┐   (or SigLIP: one token per patch)
    state (proprio [+ goal]) ──MLP──► 1 token ──────────┼─► Llama decoder ─► a_1 … a_{H·D}
    instruction ──word-level tokenizer──► ≤8 ───────────┤     (greedy, KV cache)
    [BOA] ───────────────────────────────────────────────┘

Each action dim of each of the chunk's H steps is one token among ``n_action_bins``
reserved ids (docs/apo.md §4), step by step: a_1 … a_D are the next action's, then the
following step's. The decoder's distribution over an action token is taken over those ids
only. An auxiliary regression head reads the pooled image and state features and predicts
the next normalised action: it gives the image encoder a direct signal during behaviour
cloning (trained end to end through tokens alone, a tiny VLA did not ground on the image).

Everything is random-initialised from configs (no hub) and saved as safetensors + JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from apo_core.action_tokenizer import ActionTokenizer
from apo_core.policy.configuration_apo_vla import ApoVlaConfig, ApoVlaPolicyConfig
from apo_core.policy.conv_encoder import ConvKeypointEncoder
from apo_core.policy.inputs import (
    build_instruction_tokenizer,
    demonstrated_state,
    instruction_vocab,
    random_shift,
    standardisation,
    state_input,
)
from apo_core.policy.interface import CONFIG_FILE, WEIGHTS_FILE, ActionScores, ActionTokens, to_device
from apo_core.policy.pretrained import PretrainedPolicy

ACTION_STATS_FILE = "action_stats.json"

# LoRA on the decoder only: a plain "q_proj" would also match SigLIP's attention.
DECODER_LORA_TARGETS = r".*decoder\.model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"
VISION_LORA_TARGETS = r".*vision\.vision_model\.encoder\.layers\.\d+\.(self_attn\.(q|k|v|out)_proj|mlp\.fc[12])"


@dataclass
class PolicyOutput:
    action_logprobs: torch.Tensor  # [B, K, T, n_bins]: log π(bin | o, y_<t) for each candidate (T = H·D)
    aux_actions: torch.Tensor  # [B, D]: the regressed next normalised action
    aux_objects: torch.Tensor | None  # [B, E]: the image's regressed standardised environment state


@dataclass
class ApoVlaObservations:
    """The model's inputs: pixels in [-1, 1] (None without a vision tower), the
    standardised state and the padded instruction ids."""

    pixels: torch.Tensor | None
    state: torch.Tensor
    instruction_ids: torch.Tensor

    def __len__(self) -> int:
        return len(self.state)


def image_encoder(config: ApoVlaConfig) -> nn.Module | None:
    """The vision tower the config names (None without an image)."""
    if not config.use_image:
        return None
    if config.vision_encoder == "conv":
        return ConvKeypointEncoder(config.image_size, config.conv_channels, config.keypoints,
                                   config.vision_hidden_size)
    return SiglipVisionModel(SiglipVisionConfig(
        hidden_size=config.vision_hidden_size, intermediate_size=config.vision_intermediate_size,
        num_hidden_layers=config.vision_layers, num_attention_heads=config.vision_heads,
        image_size=config.image_size, patch_size=config.patch_size, vision_use_head=False))


class ApoVlaPolicy(PretrainedPolicy):
    """The tiny VLA: one token per action dim and chunk step, OpenVLA-style bins
    (``policy.kind: apo-vla``)."""

    kind = "apo-vla"
    config_class = ApoVlaPolicyConfig
    lora_targets = DECODER_LORA_TARGETS
    vision_lora_targets = VISION_LORA_TARGETS

    def __init__(self, config: ApoVlaConfig, action_tokenizer: ActionTokenizer):
        super().__init__()
        if not config.instruction_vocab:
            raise ValueError("config.instruction_vocab is empty: build it with instruction_vocab(...)")
        if action_tokenizer.action_dim != config.action_dim:
            raise ValueError(f"action tokenizer has {action_tokenizer.action_dim} dims, config {config.action_dim}")
        self.config = config
        self.action_tokenizer = action_tokenizer
        self.text_tokenizer = build_instruction_tokenizer(config.instruction_vocab)
        self.action_token_offset = len(config.instruction_vocab)
        self.boa_id = config.instruction_vocab.index("[BOA]")
        self.pad_id = config.instruction_vocab.index("[PAD]")
        self.vision = image_encoder(config)
        prefix_length = config.image_tokens + 1 + config.max_instruction_tokens + 1
        self.decoder = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=self.action_token_offset + config.n_action_bins,
                hidden_size=config.hidden_size,
                intermediate_size=config.decoder_intermediate_size,
                num_hidden_layers=config.decoder_layers,
                num_attention_heads=config.decoder_heads,
                num_key_value_heads=config.decoder_heads,
                max_position_embeddings=prefix_length + config.action_tokens,
                tie_word_embeddings=False,
            )
        )
        self.image_projector = nn.Linear(config.vision_hidden_size, config.hidden_size) if config.use_image else None
        self.state_projector = nn.Sequential(
            nn.Linear(config.state_token_inputs, config.hidden_size), nn.GELU(),
            nn.Linear(config.hidden_size, config.hidden_size),
        )
        self.aux_head = nn.Sequential(
            nn.Linear((2 if config.use_image else 1) * config.hidden_size, config.hidden_size), nn.GELU(),
            nn.Linear(config.hidden_size, config.action_dim),
        )
        # Reads the image's pooled feature alone: a training-only target that makes the encoder find the objects.
        self.object_head = nn.Linear(config.hidden_size, config.environment_state_dim) if config.use_image else None
        self._instruction_cache: dict[str, list[int]] = {}
        self.register_statistics("state", config.state_mean, config.state_std, config.state_dim)
        self.register_statistics("environment_state", config.environment_state_mean, config.environment_state_std,
                                 config.environment_state_dim)
        centers = torch.from_numpy(action_tokenizer.centers.astype(np.float32))
        self.register_buffer("bin_centers", centers, persistent=False)

    @classmethod
    def build(cls, policy_config: ApoVlaPolicyConfig, demonstrations, *, image_size: int, action_dim: int,
              gripper_dim: int, seed: int) -> ApoVlaPolicy:
        """Random-initialised from the section; the action bins' and the state's statistics
        from the demonstrations (expert steps)."""
        section = cls.section(policy_config)
        environment_mean, environment_std = standardisation(torch.from_numpy(demonstrations.environment_state))
        torch.manual_seed(seed)
        config = ApoVlaConfig.from_section(
            section, image_size=image_size, action_dim=action_dim, gripper_dim=gripper_dim,
            instruction_vocab=instruction_vocab(sorted(set(demonstrations.instructions))),
            environment_state_mean=environment_mean, environment_state_std=environment_std,
            **demonstrated_state(section.state_inputs, demonstrations))
        return cls(config, ActionTokenizer.fit(demonstrations.actions))

    # ----- inputs -------------------------------------------------------------------
    def instruction_ids(self, instructions: list[str]) -> torch.Tensor:
        """Word ids padded to ``max_instruction_tokens`` (constant length: no attention mask)."""
        rows = []
        for text in instructions:
            if text not in self._instruction_cache:
                ids = self.text_tokenizer(text, add_special_tokens=False)["input_ids"]
                ids = ids[: self.config.max_instruction_tokens]
                self._instruction_cache[text] = ids + [self.pad_id] * (self.config.max_instruction_tokens - len(ids))
            rows.append(self._instruction_cache[text])
        return torch.tensor(rows, dtype=torch.long)

    def select_state(self, proprio: torch.Tensor, environment_state: torch.Tensor) -> torch.Tensor:
        """The low-dim input the config names, standardised with the demonstrations' statistics."""
        state = state_input(self.config.state_inputs, proprio, environment_state)
        return (state - self.state_mean) / self.state_std

    def object_targets(self, environment_state: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """The object head's target: the recorded environment state, standardised."""
        target = to_device(torch.from_numpy(environment_state), device)
        return (target - self.environment_state_mean) / self.environment_state_std

    @staticmethod
    def pixels(images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [-1, 1]."""
        return images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)

    def prefix(self, pixels: torch.Tensor | None, state: torch.Tensor, instruction_ids: torch.Tensor):
        """Embeddings of [image patches, state, instruction, BOA] and the pooled features.

        ``pixels`` is ignored (may be None) when the model has no vision tower.
        """
        embed = self.decoder.get_input_embeddings()
        boa = embed(torch.full((len(state), 1), self.boa_id, dtype=torch.long, device=state.device))
        if self.vision is None:
            state_token = self.state_projector(state).unsqueeze(1)
            return torch.cat([state_token, embed(instruction_ids), boa], dim=1), state_token.squeeze(1)
        image_tokens, image_pooled = self.image_features(pixels)
        if self.config.estimate_objects:
            # Detached: the head learns the poses from its own target, the policy learns to use them.
            state = torch.cat([state, self.object_head(image_pooled).detach()], dim=-1)
        state_token = self.state_projector(state).unsqueeze(1)
        embeds = torch.cat([image_tokens, state_token, embed(instruction_ids), boa], dim=1)
        return embeds, torch.cat([image_pooled, state_token.squeeze(1)], dim=-1)

    def image_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The image's tokens [B, T, hidden] and pooled feature [B, hidden] (SigLIP: the mean patch)."""
        if self.config.vision_encoder == "conv":
            tokens, pooled = self.vision(pixels)
            return self.image_projector(tokens), self.image_projector(pooled)
        patches = self.image_projector(self.vision(pixel_values=pixels).last_hidden_state)
        return patches, patches.mean(dim=1)

    def _action_logprobs(self, logits: torch.Tensor) -> torch.Tensor:
        start = self.action_token_offset
        return logits[..., start : start + self.config.n_action_bins].float().log_softmax(dim=-1)

    # ----- training -----------------------------------------------------------------
    def forward(
        self, pixels: torch.Tensor, state: torch.Tensor, instruction_ids: torch.Tensor, action_bins: torch.Tensor
    ) -> PolicyOutput:
        """Teacher-forced log-probs for K candidate action sequences per observation.

        ``action_bins``: [B, T] or [B, K, T] bin indices. The prefix is encoded once and
        shared by the K candidates (e.g. DPO's chosen and rejected actions).
        """
        if action_bins.dim() == 2:
            action_bins = action_bins.unsqueeze(1)
        batch, candidates, dims = action_bins.shape
        embeds, pooled = self.prefix(pixels, state, instruction_ids)
        logprobs, _ = self._teacher_forced(embeds.repeat_interleave(candidates, dim=0),
                                           action_bins.reshape(batch * candidates, dims))
        return self._output(logprobs.reshape(batch, candidates, dims, -1), pooled)

    def forward_with_mismatched(
        self, pixels: torch.Tensor, state: torch.Tensor, instruction_ids: torch.Tensor, action_bins: torch.Tensor,
        mismatched_bins: torch.Tensor,
    ) -> tuple[PolicyOutput, torch.Tensor]:
        """The sample's own action tokens [B, T] with a graph, and, without one, the token
        log-probs of a mismatched action's [B, T] on the same observation (z0's pair, docs/apo.md §5).

        The mismatched action reuses the own pass's keys and values of the prefix (the cache
        cut back to it), so it costs T - 1 tokens instead of the prefix + T - 1; its first
        token's distribution depends on the prefix alone, so it is the own pass's.
        """
        if mismatched_bins.shape != action_bins.shape or action_bins.dim() != 2:
            raise ValueError(f"forward_with_mismatched: expected own and mismatched bins of one shape [B, T], got "
                             f"{list(action_bins.shape)} and {list(mismatched_bins.shape)}")
        dims = action_bins.shape[-1]
        embeds, pooled = self.prefix(pixels, state, instruction_ids)
        logprobs, cache = self._teacher_forced(embeds, action_bins, use_cache=True)
        with torch.no_grad():
            mismatched = logprobs[:, :1].detach()
            if dims > 1:
                cache.crop(-(dims - 1))
                later = self.decoder.get_input_embeddings()(mismatched_bins[:, :-1] + self.action_token_offset)
                logits = self.decoder(inputs_embeds=later, past_key_values=cache, use_cache=True).logits
                mismatched = torch.cat([mismatched, self._action_logprobs(logits)], dim=1)
            mismatched_logps = mismatched.gather(-1, mismatched_bins.unsqueeze(-1)).squeeze(-1)
        return self._output(logprobs.unsqueeze(1), pooled), mismatched_logps

    def _output(self, action_logprobs: torch.Tensor, pooled: torch.Tensor) -> PolicyOutput:
        """The token log-probs with the auxiliary heads' outputs (the image's feature leads ``pooled``)."""
        objects = None if self.object_head is None else self.object_head(pooled[:, : self.config.hidden_size])
        return PolicyOutput(action_logprobs, aux_actions=self.aux_head(pooled), aux_objects=objects)

    def _teacher_forced(self, embeds: torch.Tensor, action_bins: torch.Tensor, use_cache: bool = False):
        """log π over the bins at the T positions that predict a_1..a_T: [N, T, n_bins],
        and the decoder's cache when ``use_cache``. Logits are computed for those T only."""
        dims = action_bins.shape[-1]
        previous = self.decoder.get_input_embeddings()(action_bins[:, :-1] + self.action_token_offset)
        out = self.decoder(inputs_embeds=torch.cat([embeds, previous], dim=1), use_cache=use_cache,
                           logits_to_keep=dims)
        return self._action_logprobs(out.logits), out.past_key_values

    @torch.no_grad()
    def greedy_bins(self, pixels: torch.Tensor, state: torch.Tensor, instruction_ids: torch.Tensor) -> torch.Tensor:
        """Greedy decoding of the H·D action tokens with a KV cache: bins [B, H·D]."""
        embeds, _ = self.prefix(pixels, state, instruction_ids)
        out = self.decoder(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
        bins = []
        for position in range(self.config.action_tokens):
            next_bin = self._action_logprobs(out.logits[:, -1]).argmax(dim=-1)
            bins.append(next_bin)
            if position + 1 < self.config.action_tokens:
                token = self.decoder.get_input_embeddings()((next_bin + self.action_token_offset).unsqueeze(1))
                out = self.decoder(inputs_embeds=token, past_key_values=out.past_key_values, use_cache=True)
        return torch.stack(bins, dim=1)

    # ----- the policy interface -----------------------------------------------------
    @property
    def action_normalizer(self) -> ActionTokenizer:
        return self.action_tokenizer

    @property
    def undesirable_skip(self) -> list[int]:
        """The gripper's token in each step of the chunk."""
        dims = self.config.action_dim
        return [step * dims + self.config.gripper_dim for step in range(self.config.chunk_size)]

    def encode_actions(self, actions: np.ndarray) -> ActionTokens:
        """Chunks [N, H, D] -> one bin per dim and step [N, H·D], step by step."""
        rows, horizon, dims = actions.shape
        if horizon != self.config.chunk_size:
            raise ValueError(f"encode_actions: chunks of {horizon} steps for a policy of chunk_size "
                             f"{self.config.chunk_size}")
        bins = self.action_tokenizer.encode(actions.reshape(rows * horizon, dims))
        return ActionTokens(torch.from_numpy(bins.reshape(rows, horizon * dims)))

    def decode_normalized(self, tokens: ActionTokens) -> tuple[torch.Tensor, torch.Tensor]:
        """Every id decodes: the last id has no bin of its own and maps to the last centre."""
        centers = self.bin_centers.to(tokens.ids.device)
        decoded = torch.ones(len(tokens), dtype=torch.bool, device=tokens.ids.device)
        normalized = centers[tokens.ids.clamp_max(len(centers) - 1)]
        return normalized.reshape(len(tokens), self.config.chunk_size, self.config.action_dim), decoded

    def decode_actions(self, tokens: ActionTokens) -> tuple[np.ndarray, np.ndarray]:
        ids = tokens.ids.cpu().numpy().reshape(-1, self.config.action_dim)
        actions = self.action_tokenizer.decode(ids).astype(np.float32)
        return actions.reshape(len(tokens), self.config.chunk_size, -1), np.ones(len(tokens), dtype=bool)

    def observations(self, images: np.ndarray | None, proprio: np.ndarray, environment_state: np.ndarray,
                     instructions: list[str], device: torch.device | str = "cpu") -> ApoVlaObservations:
        pixels = to_device(self.pixels(torch.from_numpy(images)), device) if self.config.use_image else None
        state = self.select_state(to_device(torch.from_numpy(proprio), device),
                                  to_device(torch.from_numpy(environment_state), device))
        return ApoVlaObservations(pixels, state, to_device(self.instruction_ids(instructions), device))

    def augment(self, observations: ApoVlaObservations, shift: int, generator: torch.Generator) -> ApoVlaObservations:
        return replace(observations, pixels=random_shift(observations.pixels, shift, generator))

    def score_actions(self, observations: ApoVlaObservations, tokens: ActionTokens, *,
                      mismatched: ActionTokens | None = None, full: bool = False) -> ActionScores:
        inputs = (observations.pixels, observations.state, observations.instruction_ids)
        mismatched_logps = None
        if mismatched is None:
            output = self(*inputs, tokens.ids)
        else:
            output, mismatched_logps = self.forward_with_mismatched(*inputs, tokens.ids, mismatched.ids)
        logprobs = output.action_logprobs[:, 0]
        return ActionScores(token_logps=logprobs.gather(-1, tokens.ids.unsqueeze(-1)).squeeze(-1),
                            greedy_ids=logprobs.detach().argmax(dim=-1), logprobs=logprobs if full else None,
                            aux_actions=output.aux_actions, aux_objects=output.aux_objects,
                            mismatched_logps=mismatched_logps)

    def score_candidates(self, observations: ApoVlaObservations, tokens: ActionTokens,
                         full: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        output = self(observations.pixels, observations.state, observations.instruction_ids, tokens.ids)
        logps = output.action_logprobs.gather(-1, tokens.ids.unsqueeze(-1)).squeeze(-1)
        return logps, (output.action_logprobs[:, 0] if full else None)

    def generate(self, observations: ApoVlaObservations) -> ActionTokens:
        return ActionTokens(self.greedy_bins(observations.pixels, observations.state, observations.instruction_ids))

    # ----- persistence --------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().contiguous() for name, tensor in self.state_dict().items()}
        save_file(state, directory / WEIGHTS_FILE)
        self.config.save(directory / CONFIG_FILE, kind=self.kind)
        (directory / ACTION_STATS_FILE).write_text(json.dumps(self.action_tokenizer.to_dict(), indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ApoVlaPolicy:
        directory = Path(directory)
        missing = [name for name in (WEIGHTS_FILE, CONFIG_FILE, ACTION_STATS_FILE) if not (directory / name).exists()]
        if missing:
            raise FileNotFoundError(f"{directory}: not a saved policy, missing {missing}")
        config = ApoVlaConfig.load(directory / CONFIG_FILE)
        tokenizer = ActionTokenizer.from_dict(json.loads((directory / ACTION_STATS_FILE).read_text()))
        policy = cls(config, tokenizer)
        policy.load_state_dict(load_file(directory / WEIGHTS_FILE), strict=True)
        return policy.eval()
