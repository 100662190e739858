"""The reference policy's side of a preference update, computed once per round before
training: its token log-probs of the actions the loss compares (docs/apo.md §5). The
update is then written into the same module, so no second model sits in memory."""

from __future__ import annotations

import numpy as np
import torch

from apo_core.data.steps import Steps
from apo_core.policy import ActionTokens, Policy, observations_of

CHUNK = 256


@torch.no_grad()
def reference_scores(reference: Policy, steps: Steps, index: np.ndarray, candidates: ActionTokens, *,
                     full: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token log-probs [len(index), K, T] of the K candidate token sequences of each row at
    ``index`` (``candidates`` aligned with ``index``), and with ``full`` the first
    candidate's distributions, in chunks."""
    logps, distributions = [], []
    for start in range(0, len(index), CHUNK):
        observations = observations_of(reference, steps, index[start : start + CHUNK], device)
        chunk_logps, chunk_full = reference.score_candidates(
            observations, candidates[start : start + CHUNK].to(device), full=full)
        logps.append(chunk_logps)
        if full:
            distributions.append(chunk_full)
    return torch.cat(logps), (torch.cat(distributions) if full else None)
