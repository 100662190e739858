"""The shape every method's trainer has (TRL's): its batches, its forward pass, its loss
(a pure function of :mod:`apo_core.objectives`) with its metrics. What they share, the
optimisation loop with its checkpoints and guards, is :func:`apo_core.training.run.optimise`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from apo_core.config import TrainConfig
from apo_core.data.steps import Steps
from apo_core.labels import Label
from apo_core.policy import Policy
from apo_core.training.run import Notice, ProgressCallback, optimise, resolve_device, run_identity


class Trainer(ABC):
    """One method's training of ``policy`` on labelled ``steps``; the policy receives the update."""

    method: ClassVar[str]

    def __init__(self, policy: Policy, steps: Steps, config: TrainConfig):
        self.policy, self.steps, self.config = policy, steps, config
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
        self.prepare(batches)
        model = self.trainable()

        def loss_at(step: int):
            return self.loss(batches[step], self.forward(batches[step]))

        optimise(model, loss_at, identity=run_identity(self.steps, self.method, self.config, len(batches)),
                 lr=self.learning_rate, warmup=self.config.warmup_steps, work_dir=Path(work_dir),
                 checkpoint_every=self.config.checkpoint_every, threads=self.config.threads, on_step=on_step,
                 on_notice=on_notice)
        return self.finish(model).to("cpu").eval()


class UpdateTrainer(Trainer):
    """An update of round k+1 from round k: every parameter, or LoRA adapters on the
    policy's targets, merged into it at the end (``train.update_params``)."""

    def trainable(self) -> nn.Module:
        if self.config.update_params == "full":
            return self.policy
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=self.config.lora_r, lora_alpha=self.config.lora_alpha,
                          lora_dropout=self.config.lora_dropout, target_modules=self.policy.lora_targets)
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
