"""Method kto: the prospect loss on balanced batches, every sample weighing 1
(docs/apo.md §5, §7; ``train.kto``), plus the NLL anchor on the desirable samples and
the image's object regression where the policy has that head (``Trainer.with_object_loss``).

    r_i        = Σ_t log π_θ(y_t | o_i, y_<t) - log π_ref(y_t | o_i, y_<t)
    z0         = mean over the batch of the same on mismatched pairs (detached, clamped)
    desirable:   L_i = 1 - σ(β (r_i - z0))     undesirable: L_i = 1 - σ(β (z0 - r_i))

The mismatched pair of row i (its observation with another row's action) is fixed for the
round by a seeded permutation, so the reference's log-prob of it is precomputed too; it
plays the role of the in-batch roll. z0 is detached, so the policy scores the pair without
a graph (``Policy.score_actions(mismatched=...)``). With ``z0_mode: exact`` z0 is the
per-token KL between the policy's and the reference's distributions instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from apo_core.objectives import action_logps, exact_token_kl, kto_loss, nll_loss
from apo_core.policy import ActionScores, observations_of
from apo_core.sampler import BalancedBatchSampler, balanced_epochs, preference_pools
from apo_core.training.reference import reference_scores
from apo_core.training.trainer import UpdateTrainer


@dataclass
class PreferenceOutputs:
    index: np.ndarray
    desirable: torch.Tensor
    scores: ActionScores


class KTOTrainer(UpdateTrainer):
    method = "kto"

    @property
    def settings(self):
        return self.config.kto

    def batches(self) -> list:
        """Balanced batches (docs/apo.md §3): an epoch is one pass over the human corrections."""
        pools = preference_pools(self.steps.labels, self.steps.acted_by,
                                 autonomous_is_correct=self.settings.autonomous_is_correct)
        sampler = BalancedBatchSampler(pools, batch_size=self.config.batch_size, ratios=dict(self.settings.ratios),
                                       seed=self.config.seed)
        return balanced_epochs(sampler, self.config.epochs)

    def prepare(self, batches: list) -> None:
        tokens = self.policy.encode_actions(self.chunks(self.steps.actions))
        partner = torch.from_numpy(np.random.default_rng([self.config.seed, 1]).permutation(len(self.steps)))
        self.own_and_partner = tokens.stack(tokens[partner])
        exact = self.settings.z0_mode == "exact"
        logps, full = reference_scores(self.policy, self.steps, np.arange(len(self.steps)), self.own_and_partner,
                                       full=exact, device=self.device)
        self.reference_logps, self.reference_partner_logps, self.reference_logprobs = logps[:, 0], logps[:, 1], full
        self.own_and_partner = self.own_and_partner.to(self.device)
        self.skip = self.policy.undesirable_skip if self.settings.ignore_gripper_when_undesirable else None

    def forward(self, batch) -> PreferenceOutputs:
        index, desirable = self.batch_rows(batch)
        observations = observations_of(self.policy, self.steps, index, self.device)
        pairs = self.own_and_partner[index]
        exact = self.settings.z0_mode == "exact"
        scores = self.policy.score_actions(observations, pairs[:, 0], mismatched=None if exact else pairs[:, 1],
                                           full=exact)
        return PreferenceOutputs(index, desirable, scores)

    def rewards(self, outputs: PreferenceOutputs):
        """log π_θ and log π_ref of each sample's action, and z0's two sides."""
        index, desirable, scores = outputs.index, outputs.desirable, outputs.scores
        policy_logps = action_logps(scores.token_logps, desirable, self.skip)
        reference_logps = action_logps(self.reference_logps[index], desirable, self.skip)
        if self.settings.z0_mode == "exact":
            kl_policy = exact_token_kl(scores.logprobs, self.reference_logprobs[index])
            return policy_logps, reference_logps, kl_policy, torch.zeros_like(kl_policy)
        return policy_logps, reference_logps, scores.mismatched_logps.sum(dim=-1), \
            self.reference_partner_logps[index].sum(dim=-1)

    def preference_loss(self, outputs: PreferenceOutputs, rewards):
        return kto_loss(*rewards, outputs.desirable, beta=self.settings.beta, z0_clamp=self.settings.z0_clamp)

    def loss(self, batch, outputs: PreferenceOutputs):
        loss, metrics = self.preference_loss(outputs, self.rewards(outputs))
        desirable = outputs.desirable
        if self.settings.nll_weight > 0 and desirable.any():
            mask = self.own_and_partner[outputs.index][:, 0].mask
            anchor, _ = nll_loss(outputs.scores.token_logps[desirable], None if mask is None else mask[desirable])
            loss, metrics = loss + self.settings.nll_weight * anchor, {**metrics, "nll_anchor": anchor.detach()}
        return self.with_object_loss(loss, metrics, outputs.index, outputs.scores)
