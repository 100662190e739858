"""Round 0: behaviour cloning from the expert demonstrations, every parameter.

Loss: NLL of the expert's action tokens + ``aux_weight`` · MSE of the regressed
(normalised) action, where the policy has a regression head (it gives a vision tower a
direct signal), + ``aux_object_weight`` · MSE of the object poses regressed from the image
alone, where the policy has that head (the simulator records the poses; the policy never
reads them). Images are randomly shifted (``train.augment_shift``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from apo_core.data.steps import expert_mask
from apo_core.objectives import nll_loss
from apo_core.policy import ActionScores, observations_of
from apo_core.training.trainer import Trainer


@dataclass(frozen=True)
class BCBatch:
    index: np.ndarray
    augment_seed: int


class BCTrainer(Trainer):
    method = "bc"

    @property
    def learning_rate(self) -> float:
        return self.config.bc_lr

    def batches(self) -> list[BCBatch]:
        """``train.bc_steps`` batches of expert steps, each drawn without replacement."""
        expert = np.flatnonzero(expert_mask(self.steps))
        if len(expert) == 0:
            raise ValueError("behaviour cloning needs expert demonstration steps; none were given")
        size = min(self.config.bc_batch_size, len(expert))
        batches = []
        for step in range(self.config.bc_steps):
            rng = np.random.default_rng([self.config.seed, step])
            index = rng.choice(expert, size=size, replace=False)
            batches.append(BCBatch(index, int(rng.integers(2**31))))
        return batches

    def prepare(self, batches: list[BCBatch]) -> None:
        normalizer = self.policy.action_normalizer
        self.normalized = torch.from_numpy(normalizer.normalize(self.steps.actions).astype(np.float32))
        self.tokens = self.policy.encode_actions(self.chunks(self.steps.actions))

    def forward(self, batch: BCBatch) -> ActionScores:
        generator = torch.Generator().manual_seed(batch.augment_seed)
        observations = observations_of(self.policy, self.steps, batch.index, self.device)
        observations = self.policy.augment(observations, self.config.augment_shift, generator)
        return self.policy.score_actions(observations, self.tokens[batch.index].to(self.device))

    def loss(self, batch: BCBatch, outputs: ActionScores):
        nll, _ = nll_loss(outputs.token_logps, self.tokens[batch.index].mask)
        loss, metrics = nll, {"nll": nll.detach()}
        if outputs.aux_actions is not None:
            aux = F.mse_loss(outputs.aux_actions, self.normalized[batch.index].to(self.device))
            loss, metrics["aux_mse"] = loss + self.config.aux_weight * aux, aux.detach()
        return self.with_object_loss(loss, metrics, batch.index, outputs)
