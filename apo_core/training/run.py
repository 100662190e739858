"""The optimisation loop every method shares: Adam, warm-up + cosine, checkpoints, guards.

* Deterministic under ``train.seed``: each method derives its batch schedule and
  augmentation from it, so a run resumed from a checkpoint continues the same schedule.
* A checkpoint (trainable weights, optimiser, scheduler, step) is written atomically every
  ``checkpoint_every`` steps, together with the identity of the run: the fingerprint of
  the data, the method, the training settings and the step budget. A crashed run resumes
  from it; a checkpoint of any OTHER run is never resumed: it is set aside and training
  starts fresh, and the caller is told why.
* A non-finite loss stops the run with :class:`TrainingDiverged` (nothing is saved, the
  checkpoint of the last good step stays), and so does a non-finite weight at the end.
* Device-agnostic: the model and each batch go to ``device`` (``train.device``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from apo_core.config import TrainConfig
from apo_core.data.steps import Steps
from apo_core.errors import ApoError

CHECKPOINT_FILE = "checkpoint.pt"
ProgressCallback = Callable[[int, int, dict[str, float]], None]
Notice = Callable[[str], None]
LossAt = Callable[[int], tuple[torch.Tensor, dict[str, torch.Tensor]]]


class TrainingDiverged(ApoError):
    """The loss or the weights became NaN / infinite: nothing was saved."""


def resolve_device(setting: str) -> torch.device:
    """``train.device``: auto = CUDA when this machine has a GPU, else the CPU."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting == "cuda" and not torch.cuda.is_available():
        raise ApoError("train.device: cuda was asked for, but torch sees no GPU on this machine")
    return torch.device(setting)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block on ``count`` torch threads, then give the caller back its own: a Ray
    worker that trains goes on to evaluate on one thread per CPU it holds."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_identity(steps: Steps, method: str, config: TrainConfig, total_steps: int) -> dict:
    """What a run trains on and how: a checkpoint resumes only a run with the same identity."""
    settings = config.model_dump(mode="json", exclude={"threads", "checkpoint_every", "device"})
    return {"data_fingerprint": steps.fingerprint(), "method": method, "total_steps": total_steps,
            "settings_sha256": hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]}


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """Linear warm-up for ``warmup`` steps, then cosine decay to 0 at ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class Checkpoint:
    """Atomic save/restore of a run's trainable weights, optimiser, scheduler and step."""

    def __init__(self, directory: Path, identity: dict):
        self.path = Path(directory) / CHECKPOINT_FILE
        self.identity = identity

    def save(self, step: int, model: torch.nn.Module, optimizer, scheduler) -> None:
        trainable = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
        state = {"step": step, "identity": self.identity, "weights": trainable,
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        temporary = self.path.with_suffix(".tmp")
        torch.save(state, temporary)
        os.replace(temporary, self.path)

    def restore(self, model: torch.nn.Module, optimizer, scheduler, on_notice: Notice | None) -> int:
        """Load this run's checkpoint if there is one; returns the step to continue from."""
        if not self.path.exists():
            return 0
        try:
            state = torch.load(self.path, weights_only=True, map_location="cpu")
        except Exception as error:  # a torn or foreign file: never resume from it
            return self._set_aside(f"unreadable ({type(error).__name__})", on_notice)
        if state.get("identity") != self.identity:
            differs = sorted(k for k in self.identity if (state.get("identity") or {}).get(k) != self.identity[k])
            return self._set_aside(f"made by another run (different {', '.join(differs)})", on_notice)
        parameters = dict(model.named_parameters())
        for name, tensor in state["weights"].items():
            parameters[name].data.copy_(tensor)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if on_notice is not None:
            on_notice(f"resuming from the checkpoint in {self.path.parent} at step {state['step']}")
        return int(state["step"])

    def _set_aside(self, why: str, on_notice: Notice | None) -> int:
        stale = self.path.with_name(CHECKPOINT_FILE + ".stale")
        os.replace(self.path, stale)
        if on_notice is not None:
            on_notice(f"the checkpoint in {self.path.parent} was {why}: not resumed (kept as {stale.name}); "
                      f"training starts fresh")
        return 0

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.with_name(CHECKPOINT_FILE + ".stale").unlink(missing_ok=True)


def optimise(
    model: torch.nn.Module,
    loss_at: LossAt,
    *,
    identity: dict,
    lr: float,
    warmup: int,
    work_dir: Path,
    checkpoint_every: int,
    threads: int,
    on_step: ProgressCallback | None = None,
    on_notice: Notice | None = None,
) -> None:
    """Run ``identity["total_steps"]`` optimiser steps of ``loss_at(step)`` on ``threads``
    torch threads, resumable."""
    total_steps = identity["total_steps"]
    if total_steps < 1:
        raise ApoError(f"training needs at least one step, got {total_steps}")
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=lr, fused=True)  # one kernel for every parameter
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total_steps))
    checkpoint = Checkpoint(work_dir, identity)
    start = checkpoint.restore(model, optimizer, scheduler, on_notice)
    with torch_threads(threads):
        model.train()
        for step in range(start, total_steps):
            loss, metrics = loss_at(step)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"training diverged at step {step + 1}/{total_steps}: the loss is "
                                       f"{float(loss.detach())} (data {identity['data_fingerprint']}); "
                                       "no model was saved")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            scheduler.step()
            if (step + 1) % checkpoint_every == 0 and step + 1 < total_steps:
                checkpoint.save(step + 1, model, optimizer, scheduler)
            if on_step is not None:
                on_step(step + 1, total_steps, {"loss": float(loss.detach()),
                                                **{k: float(v) for k, v in metrics.items()}})
    model.eval()
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise TrainingDiverged(f"training produced non-finite weights ({bad[0]}, ...); no model was saved")
    checkpoint.remove()
