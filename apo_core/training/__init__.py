"""Training, TRL style: one trainer per phase, the losses pure functions (apo_core.objectives).

    bc.py          round 0: behaviour cloning from the expert demonstrations
    preference.py  round k+1: dagger | sirius | dpo | kto | apo update of the champion
    run.py         the optimisation loop they share (checkpoints, identity, divergence guard, threads)
"""

from apo_core.training.bc import build_policy, train_bc
from apo_core.training.preference import train_preference, update_schedule, with_lora
from apo_core.training.run import ProgressCallback, TrainingDiverged, resolve_device, torch_threads

__all__ = ["ProgressCallback", "TrainingDiverged", "build_policy", "resolve_device",
           "torch_threads", "train_bc", "train_preference", "update_schedule", "with_lora"]
