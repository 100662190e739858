"""Method dagger (HG-DAgger on the aggregated data): NLL of the demonstrations' and the
human corrections' action tokens, in shuffled passes over them (docs/apo.md §7), plus the
image's object regression where the policy has that head (``Trainer.with_object_loss``)."""

from __future__ import annotations

import numpy as np

from apo_core.labels import ActedBy, Label
from apo_core.objectives import nll_loss
from apo_core.policy import ActionScores, observations_of
from apo_core.training.trainer import UpdateTrainer


class DaggerTrainer(UpdateTrainer):
    method = "dagger"

    def learn_from(self) -> np.ndarray:
        """The rows it imitates: expert demonstrations and human corrections."""
        return np.flatnonzero((self.steps.acted_by == ActedBy.EXPERT_DEMO) | (self.steps.labels == Label.HUMAN))

    def batches(self) -> list:
        """``train.epochs`` shuffled passes: every row once per epoch."""
        return self.passes_over(self.learn_from())

    def prepare(self, batches: list) -> None:
        self.tokens = self.policy.encode_actions(self.chunks(self.steps.actions))

    def forward(self, batch) -> ActionScores:
        index, _ = self.batch_rows(batch)
        observations = observations_of(self.policy, self.steps, index, self.device)
        return self.policy.score_actions(observations, self.tokens[index].to(self.device))

    def loss(self, batch, outputs: ActionScores):
        index, _ = self.batch_rows(batch)
        return self.with_object_loss(*nll_loss(outputs.token_logps, self.tokens[index].mask), index, outputs)
