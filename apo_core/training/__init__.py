"""Training, TRL style: one trainer per method over one optimisation loop; the losses are
pure functions (apo_core.objectives).

    trainer.py    the shape of a trainer (batches, forward, loss) and an update's LoRA option
    bc.py         round 0: behaviour cloning from the expert demonstrations
    dagger.py     round k+1: NLL on the demos and the human corrections
    sirius.py     round k+1: the same NLL on Sirius-weighted batches
    dpo.py        round k+1: DPO, the human's action over the policy's proposal
    kto.py        round k+1: the prospect loss, λ = 1
    apo.py        round k+1: the prospect loss with adaptive λ (docs/apo.md §5)
    reference.py  the reference's log-probs, once per round
    run.py        the optimisation loop they share (checkpoints, identity, divergence guard, threads)
"""

from __future__ import annotations

from pathlib import Path

from apo_core.config import Method, TrainConfig
from apo_core.data.steps import Steps
from apo_core.policy import Policy
from apo_core.training.apo import APOTrainer
from apo_core.training.bc import BCTrainer
from apo_core.training.dagger import DaggerTrainer
from apo_core.training.dpo import DPOTrainer
from apo_core.training.kto import KTOTrainer
from apo_core.training.run import Notice, ProgressCallback, TrainingDiverged, resolve_device, torch_threads
from apo_core.training.sirius import SiriusTrainer
from apo_core.training.trainer import Trainer

TRAINERS: dict[str, type[Trainer]] = {trainer.method: trainer for trainer in (
    BCTrainer, DaggerTrainer, SiriusTrainer, DPOTrainer, KTOTrainer, APOTrainer)}


def train(policy: Policy, steps: Steps, method: Method, config: TrainConfig, work_dir: Path, *,
          on_step: ProgressCallback | None = None, on_notice: Notice | None = None) -> Policy:
    """Train ``policy`` by ``method`` on ``steps`` (it receives the update; for an update
    it is also the reference, whose log-probs are taken before the first step)."""
    if method not in TRAINERS:
        raise ValueError(f"train: method must be one of {', '.join(TRAINERS)}, got {method!r}")
    return TRAINERS[method](policy, steps, config).train(work_dir, on_step=on_step, on_notice=on_notice)


__all__ = ["TRAINERS", "ProgressCallback", "Trainer", "TrainingDiverged", "resolve_device", "torch_threads", "train"]
