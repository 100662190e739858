"""Method sirius (intervention-weighted behaviour cloning): DAgger's NLL on balanced
batches whose class shares are Sirius's weights, interventions half of each batch and the
steps before a takeover almost none (docs/apo.md §7, §9; ``train.sirius``)."""

from __future__ import annotations

from apo_core.sampler import BalancedBatchSampler, balanced_epochs, preference_pools, sirius_ratios
from apo_core.training.dagger import DaggerTrainer


class SiriusTrainer(DaggerTrainer):
    method = "sirius"

    def batches(self) -> list:
        """An epoch is one pass over the human corrections; the robot's autonomous steps
        count as correct, as in Sirius."""
        settings = self.config.sirius
        pools = preference_pools(self.steps.labels, self.steps.acted_by, autonomous_is_correct=True)
        ratios = sirius_ratios(settings.intervention_share, settings.pre_intervention_share)
        sampler = BalancedBatchSampler(pools, batch_size=self.config.batch_size, ratios=ratios, seed=self.config.seed)
        return balanced_epochs(sampler, self.config.epochs)
