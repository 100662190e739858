"""Per-step APO labels (docs/apo.md §2).

Every recorded step gets one label ``c``:

* ``c = 1`` (AUTONOMOUS, desirable): the policy acted and nothing went wrong soon after;
  expert-demonstration steps are also desirable and carry ``c = 1`` (their source tag,
  ``acted_by == expert_demo``, keeps them apart from autonomous steps).
* ``c = 2`` (HUMAN, desirable): the human acted, i.e. a correction.
* ``c = 0`` (FAILURE_PRONE, undesirable): a policy step among the K steps just before a
  human takeover.
* ``c = -1`` (DROPPED): a step removed by one of the authors' optional filters; it takes
  no part in training and does not count towards K.

Edge cases the public code gets wrong and this module gets right:

* a takeover fewer than K steps into the episode labels only the steps that exist;
* two takeovers fewer than K apart: every step gets exactly one label, failure-prone wins
  over autonomous, and the human steps of the first correction stay human (the window of
  the second takeover is the K retained steps before it, whoever acted in them);
* an episode that fails with the policy in control can optionally have its last K policy
  steps labelled failure-prone (``label_unrescued_failure``).

A policy that predicts chunks of H actions trains on one sample per step t: the chunk of
steps t … t+H-1 of its episode. Labels stay per step; a chunk's label is derived from its
steps' (:func:`chunk_labels`): the K steps before a takeover make every chunk that
contains one of them failure-prone.

The module is pure numpy: no I/O, no orchestration.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class ActedBy(IntEnum):
    """Who produced the executed action of a step."""

    POLICY = 0
    HUMAN = 1
    EXPERT_DEMO = 2


class Label(IntEnum):
    """The APO label c of a step (docs/apo.md §2)."""

    DROPPED = -1
    FAILURE_PRONE = 0
    AUTONOMOUS = 1
    HUMAN = 2


def takeover_starts(acted_by: np.ndarray) -> np.ndarray:
    """Indices t where the human takes over: acted_by[t] is HUMAN and step t-1 is not.

    A human step at t = 0 is a takeover too (the human grabbed control before the policy
    ever acted); it simply has no steps before it to label.
    """
    human = np.asarray(acted_by) == ActedBy.HUMAN
    previous_human = np.concatenate([[False], human[:-1]])
    return np.flatnonzero(human & ~previous_human)


def retained_steps(
    actions_normalized: np.ndarray | None,
    *,
    drop_out_of_range: bool = False,
    drop_noop: bool = False,
    noop_threshold: float = 0.05,
    noop_dims: int = 6,
) -> np.ndarray | None:
    """The authors' optional step filters (docs/apo.md §2, code-only).

    Returns a bool mask of the steps kept, or None when no filter is on. Out of range:
    any normalised action component outside [-1, 1]. No-op: sum of |a_0..a_{noop_dims-1}|
    below ``noop_threshold`` (the code uses the 6 motion dims of a 7-D action; for a
    narrower action all motion dims are used).
    """
    if not (drop_out_of_range or drop_noop):
        return None
    if actions_normalized is None:
        raise ValueError("step filters need the normalised actions, got None")
    actions = np.asarray(actions_normalized, dtype=np.float64)
    keep = np.ones(len(actions), dtype=bool)
    if drop_out_of_range:
        keep &= np.all(np.abs(actions) <= 1.0, axis=1)
    if drop_noop:
        motion = actions[:, : min(noop_dims, actions.shape[1] - 1)]
        keep &= np.abs(motion).sum(axis=1) >= noop_threshold
    return keep


def label_steps(
    acted_by: np.ndarray,
    *,
    k: int = 10,
    retained: np.ndarray | None = None,
    episode_success: bool = True,
    label_unrescued_failure: bool = False,
) -> np.ndarray:
    """Label one episode's steps with c ∈ {-1, 0, 1, 2} (docs/apo.md §2).

    Args:
        acted_by: [T] ints of :class:`ActedBy`, in step order.
        k: how many retained steps before each takeover are failure-prone (paper: 10).
        retained: optional [T] bool mask from :func:`retained_steps`; dropped steps get
            ``Label.DROPPED`` and K counts retained steps only.
        episode_success: whether the episode ended in success.
        label_unrescued_failure: if the episode failed with the policy in control at the
            end, label the last K retained policy steps failure-prone as well.

    Returns:
        [T] int8 labels.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    acted_by = np.asarray(acted_by)
    if acted_by.ndim != 1:
        raise ValueError(f"acted_by must be 1-D, got shape {acted_by.shape}")
    unknown = ~np.isin(acted_by, [a.value for a in ActedBy])
    if unknown.any():
        raise ValueError(f"acted_by holds unknown values {np.unique(acted_by[unknown]).tolist()}")
    keep = np.ones(len(acted_by), dtype=bool) if retained is None else np.asarray(retained, bool)
    if keep.shape != acted_by.shape:
        raise ValueError(f"retained mask shape {keep.shape} != acted_by shape {acted_by.shape}")

    labels = np.full(len(acted_by), Label.DROPPED, dtype=np.int8)
    kept_index = np.flatnonzero(keep)
    kept_actor = acted_by[kept_index]
    kept_labels = np.where(kept_actor == ActedBy.HUMAN, Label.HUMAN, Label.AUTONOMOUS).astype(np.int8)

    # Windows are taken over the retained sequence, so K counts retained steps.
    is_policy = kept_actor == ActedBy.POLICY
    for start in takeover_starts(kept_actor):
        window = slice(max(0, start - k), start)
        kept_labels[window][is_policy[window]] = Label.FAILURE_PRONE

    failed_under_policy = len(kept_actor) > 0 and kept_actor[-1] == ActedBy.POLICY
    if label_unrescued_failure and not episode_success and failed_under_policy:
        window = slice(max(0, len(kept_actor) - k), len(kept_actor))
        kept_labels[window][is_policy[window]] = Label.FAILURE_PRONE

    labels[kept_index] = kept_labels
    return labels


def chunk_rows(episode_ids: np.ndarray, horizon: int) -> np.ndarray:
    """[N, H] row indices of the chunk that starts at each row: rows t … t+H-1 of its
    episode, the episode's last row repeated past its end. Each episode's rows are
    contiguous and in order."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    rows = np.arange(len(episode_ids))
    starts = np.flatnonzero(np.r_[True, episode_ids[1:] != episode_ids[:-1]])
    last = (np.r_[starts[1:], len(episode_ids)] - 1)[np.searchsorted(starts, rows, side="right") - 1]
    return np.minimum(rows[:, None] + np.arange(horizon)[None, :], last[:, None])


def chunk_labels(labels: np.ndarray, episode_ids: np.ndarray, horizon: int) -> np.ndarray:
    """The label of the chunk that starts at each step (docs/apo.md §2): FAILURE_PRONE when
    any of its H steps (within its episode) is failure-prone, else its first step's label.

    Args:
        labels: [N] per-step labels of retained steps, each episode's rows contiguous and in
            order (as :func:`apo_core.data.steps.load_steps` gives them).
        episode_ids: [N] the episode of each row.
        horizon: H, the steps of a chunk (1: the labels unchanged).

    Returns:
        [N] int8 labels, one per chunk start.
    """
    labels = np.asarray(labels, dtype=np.int8)
    failure_prone = np.any(labels[chunk_rows(episode_ids, horizon)] == Label.FAILURE_PRONE, axis=1)
    return np.where(failure_prone, np.int8(Label.FAILURE_PRONE), labels).astype(np.int8)


def label_counts(labels: np.ndarray) -> dict[str, int]:
    """Counts per label name, e.g. {"FAILURE_PRONE": 10, "AUTONOMOUS": 80, ...}."""
    values = np.asarray(labels)
    return {label.name: int(np.sum(values == label)) for label in Label}
