"""Method apo: KTO's prospect loss with adaptive weights (docs/apo.md §5; ``train.apo``).

    l_i = mean_d |decode(argmax π_θ(·|o_i)) - a_i|   (normalised actions, detached;
                                                     NaN where the tokens do not decode)
    w_i = l_i / Σ_j l_j   (the batch, or within each subset: ``weight_norm``)
    λ_D = 1 - exp(-β_D w_i)      λ_U = exp(-β_U w_i)      (λ = 1 where undecodable)
    loss = mean_i λ_i L_i
"""

from __future__ import annotations

import numpy as np
import torch

from apo_core.objectives import apo_loss, l1_error
from apo_core.policy import ActionTokens
from apo_core.training.kto import KTOTrainer, PreferenceOutputs


class APOTrainer(KTOTrainer):
    method = "apo"

    @property
    def settings(self):
        return self.config.apo

    def prepare(self, batches: list) -> None:
        super().prepare(batches)
        normalized = self.policy.action_normalizer.normalize(self.chunks(self.steps.actions)).astype(np.float32)
        self.normalized = torch.from_numpy(normalized).to(self.device)

    def preference_loss(self, outputs: PreferenceOutputs, rewards):
        settings = self.settings
        mask = self.own_and_partner[outputs.index][:, 0].mask
        decoded, ok = self.policy.decode_normalized(ActionTokens(outputs.scores.greedy_ids, mask))
        return apo_loss(*rewards, outputs.desirable, l1_error(decoded, self.normalized[outputs.index], ok),
                        beta=settings.beta, beta_d=settings.beta_d, beta_u=settings.beta_u,
                        z0_clamp=settings.z0_clamp, weight_norm=settings.weight_norm,
                        desirable_mass_ratio=settings.desirable_mass_ratio)
