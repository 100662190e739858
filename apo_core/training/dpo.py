"""Method dpo: chosen = the human's action, rejected = the policy's proposal recorded on
the same step; the reference's sequence log-probs computed once (docs/apo.md §7)."""

from __future__ import annotations

import numpy as np
import torch

from apo_core.labels import ActedBy
from apo_core.objectives import dpo_loss
from apo_core.policy import observations_of
from apo_core.training.reference import reference_scores
from apo_core.training.trainer import UpdateTrainer


class DPOTrainer(UpdateTrainer):
    method = "dpo"

    def batches(self) -> list:
        """Shuffled passes over the human steps that have a recorded policy proposal."""
        has_proposal = ~np.isnan(self.steps.policy_actions).any(axis=1)
        rows = np.flatnonzero((self.steps.acted_by == ActedBy.HUMAN) & has_proposal)
        return self.passes_over(rows)

    def prepare(self, batches: list) -> None:
        chosen = self.policy.encode_actions(self.chunks(self.steps.actions))
        rejected = self.policy.encode_actions(self.chunks(np.nan_to_num(self.steps.policy_actions)))
        self.pairs = chosen.stack(rejected)
        rows = np.unique(np.concatenate(batches))
        logps, _ = reference_scores(self.policy, self.steps, rows, self.pairs[rows], full=False, device=self.device)
        self.reference_logps = torch.zeros(len(self.steps), 2, device=self.device)
        self.reference_logps[torch.from_numpy(rows).to(self.device)] = logps.sum(dim=-1)
        self.pairs = self.pairs.to(self.device)

    def forward(self, batch: np.ndarray) -> torch.Tensor:
        """Sequence log-probs [B, 2] of the chosen and the rejected action."""
        observations = observations_of(self.policy, self.steps, batch, self.device)
        logps, _ = self.policy.score_candidates(observations, self.pairs[batch])
        return logps.sum(dim=-1)

    def loss(self, batch: np.ndarray, outputs: torch.Tensor):
        reference = self.reference_logps[batch]
        return dpo_loss(outputs[:, 0], outputs[:, 1], reference[:, 0], reference[:, 1], beta=self.config.dpo.beta)
