"""The shape every method's trainer has (TRL's): its batches, its forward pass, its loss
(a pure function of :mod:`apo_core.objectives`) with its metrics. What they share, the
optimisation loop with its checkpoints and guards, is :func:`apo_core.training.run.optimise`.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from apo_core.config import TrainConfig
from apo_core.data.steps import Steps, action_chunks, poses_recorded
from apo_core.labels import Label, chunk_labels
from apo_core.policy import ActionScores, Policy
from apo_core.sampler import uniform_epochs
from apo_core.training.run import Notice, ProgressCallback, optimise, resolve_device, run_identity


def mixed_precision(device: torch.device):
    """bf16 autocast on CUDA (the weights and the optimiser stay fp32); on the CPU nothing:
    there bf16 was slower than fp32 (docs/deployment.md §7)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Trainer(ABC):
    """One method's training of ``policy`` on labelled ``steps``; the policy receives the update."""

    method: ClassVar[str]

    def __init__(self, policy: Policy, steps: Steps, config: TrainConfig):
        """``steps``' labels become those of the chunks that start at them (per step for H = 1)."""
        labels = chunk_labels(steps.labels, steps.episode_ids, policy.chunk_size)
        self.policy, self.steps, self.config = policy, replace(steps, labels=labels), config
        self.device = resolve_device(config.device)

    @abstractmethod
    def batches(self) -> list:
        """The schedule: what each optimiser step trains on."""

    def prepare(self, batches: list) -> None:
        """Work done once, before the first step (e.g. the reference's log-probs)."""

    @abstractmethod
    def forward(self, batch) -> Any:
        """The policy's outputs for one batch (with a graph)."""

    @abstractmethod
    def loss(self, batch, outputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The batch's loss and metrics from the forward pass's outputs."""

    @property
    def learning_rate(self) -> float:
        return self.config.lr

    def chunks(self, actions: np.ndarray) -> np.ndarray:
        """Per-step actions as the policy's chunks: row t holds its episode's next H actions."""
        return action_chunks(actions, self.steps.episode_ids, self.policy.chunk_size)

    def with_object_loss(self, loss: torch.Tensor, metrics: dict, index: np.ndarray,
                         scores: ActionScores) -> tuple[torch.Tensor, dict]:
        """``loss`` + ``aux_object_weight`` · MSE of the object poses the image head regresses
        against the poses recorded on ``index``'s steps (docs/policies.md §6). Every method
        that scores the batch's own observations adds it, so the estimate a camera policy
        reads (``policy.estimate_objects``) is refitted to each round's frames instead of
        drifting with the encoder the update moves. Steps recorded without poses (an ingested
        recording) are left out rather than fitted to zeros. Unchanged where the policy has
        no head or no step of the batch has poses."""
        if scores.aux_objects is None or self.config.aux_object_weight == 0:
            return loss, metrics
        poses = self.steps.environment_state[index]
        recorded = poses_recorded(poses)
        if not recorded.any():
            return loss, metrics
        estimated = scores.aux_objects[torch.from_numpy(recorded).to(scores.aux_objects.device)]
        objects = F.mse_loss(estimated, self.policy.object_targets(poses[recorded], self.device))
        return loss + self.config.aux_object_weight * objects, {**metrics, "object_mse": objects.detach()}

    def trainable(self) -> nn.Module:
        """The module the optimiser updates: the policy itself."""
        return self.policy

    def finish(self, model: nn.Module) -> Policy:
        return self.policy

    def train(self, work_dir: Path, *, on_step: ProgressCallback | None = None,
              on_notice: Notice | None = None) -> Policy:
        """Run the schedule (resumable from ``work_dir``); returns the trained policy, on the CPU."""
        batches = self.batches()
        self.policy.to(self.device)
        with mixed_precision(self.device):
            self.prepare(batches)
        model = self.trainable()

        def loss_at(step: int):
            with mixed_precision(self.device):
                return self.loss(batches[step], self.forward(batches[step]))

        optimise(model, loss_at, identity=run_identity(self.steps, self.method, self.config, len(batches)),
                 lr=self.learning_rate, warmup=self.config.warmup_steps, work_dir=Path(work_dir),
                 checkpoint_every=self.config.checkpoint_every, threads=self.config.threads, on_step=on_step,
                 on_notice=on_notice)
        return self.finish(model).to("cpu").eval()


class UpdateTrainer(Trainer):
    """An update of round k+1 from round k: every parameter, or LoRA adapters on every
    linear layer of the language model (and of the vision tower with ``train.lora_vision``),
    merged into the policy at the end (``train.update_params``): a round is stored whole."""

    def trainable(self) -> nn.Module:
        if self.config.update_params == "full":
            return self.policy
        from peft import LoraConfig, get_peft_model

        targets = self.policy.lora_targets
        if self.config.lora_vision and self.policy.vision_lora_targets and self.policy.needs_image:
            targets = f"({targets})|({self.policy.vision_lora_targets})"
        lora = LoraConfig(r=self.config.lora_r, lora_alpha=self.config.lora_alpha,
                          lora_dropout=self.config.lora_dropout, target_modules=targets)
        return get_peft_model(self.policy, lora)

    def finish(self, model: nn.Module) -> Policy:
        return model if self.config.update_params == "full" else model.merge_and_unload()

    def batch_rows(self, batch) -> tuple[np.ndarray, torch.Tensor]:
        """A schedule entry's rows (a balanced batch's pools in order: correct, human,
        failure), and which of them are desirable."""
        if isinstance(batch, dict):
            index = np.concatenate([batch[name] for name in ("correct", "human", "failure") if name in batch])
            desirable = torch.from_numpy(self.steps.labels[index] != Label.FAILURE_PRONE).to(self.device)
            return index, desirable
        return batch, torch.ones(len(batch), dtype=torch.bool, device=self.device)

    def passes_over(self, rows: np.ndarray) -> list:
        """``train.epochs`` shuffled passes over ``rows``, every row once per pass; an update
        learns from the human's corrections, so ``rows`` must hold at least one."""
        if not np.any(self.steps.labels[rows] == Label.HUMAN):
            raise ValueError(f"{self.method}: no human-correction steps in the data: nothing to learn from")
        return uniform_epochs(rows, self.config.batch_size, self.config.epochs, self.config.seed)
