"""Recorded episodes flattened into one table of labelled steps, ready for training."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from apo_core.action_tokenizer import ActionTokenizer
from apo_core.config import LabelConfig
from apo_core.labels import ActedBy, Label, chunk_rows, label_steps, retained_steps
from apo_core.recording.episodes import Episode
from apo_core.recording.store import EpisodeStore, check_unique


@dataclass
class Steps:
    """Column arrays of equal length N, one row per step."""

    images: np.ndarray  # [N, H, W, 3] uint8
    proprio: np.ndarray  # [N, S] float32
    environment_state: np.ndarray  # [N, E] float32
    actions: np.ndarray  # [N, D] float32, executed
    policy_actions: np.ndarray  # [N, D] float32, the policy's proposal (NaN where none)
    acted_by: np.ndarray  # [N] int8
    labels: np.ndarray  # [N] int8 (APO c)
    instructions: np.ndarray  # [N] str
    episode_ids: np.ndarray  # [N] str
    success: np.ndarray  # [N] bool, the episode's outcome

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, mask_or_index: np.ndarray) -> Steps:
        return Steps(**{f.name: getattr(self, f.name)[mask_or_index] for f in fields(self)})

    def fingerprint(self) -> str:
        """sha256 (16 hex) over every column: two runs train on the same data iff these match."""
        digest = hashlib.sha256()
        for f in fields(self):
            column = getattr(self, f.name)
            if column.dtype == object:
                digest.update("\x1f".join(map(str, column)).encode())
            else:
                digest.update(np.ascontiguousarray(column).tobytes())
        return digest.hexdigest()[:16]

    @classmethod
    def concat(cls, parts: list[Steps]) -> Steps:
        if not parts:
            raise ValueError("no steps to concatenate")
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})


def demonstrates_task(episode: Episode) -> bool:
    """False for a failed expert demonstration: it demonstrates nothing, so it is never used."""
    return not (episode.meta.source == "expert" and not episode.meta.success)


def filter_statistics(
    label_config: LabelConfig, episodes: list[Episode], tokenizer: ActionTokenizer | None = None
) -> ActionTokenizer | None:
    """The action statistics the optional label filters normalise with (docs/apo.md §2).

    ``tokenizer`` if given (the reference model's); otherwise those of the successful
    expert demonstrations among ``episodes`` (round 0's demonstrations; with a filter on,
    round 0 itself is fit on them after filtering, so its q01/q99 can be slightly
    narrower). None when no filter is enabled.
    """
    if tokenizer is not None or not (label_config.drop_out_of_range or label_config.drop_noop):
        return tokenizer
    demos = [e.actions for e in episodes if e.meta.source == "expert" and e.meta.success]
    if not demos:
        raise ValueError(
            "labels.drop_out_of_range / labels.drop_noop normalise actions with the expert demonstrations' "
            "statistics: include the expert episodes or train from a reference model"
        )
    return ActionTokenizer.fit(np.concatenate(demos))


def episode_steps(
    episode: Episode, label_config: LabelConfig, tokenizer: ActionTokenizer | None = None
) -> Steps:
    """Label one episode's steps (docs/apo.md §2) and return them as a table.

    ``tokenizer``: the action statistics of the label filters (see :func:`filter_statistics`).
    """
    filtering = label_config.drop_out_of_range or label_config.drop_noop
    if filtering and tokenizer is None:
        raise ValueError("label filters need the action statistics (an ActionTokenizer)")
    retained = retained_steps(
        tokenizer.scale(episode.actions) if filtering else None,
        drop_out_of_range=label_config.drop_out_of_range,
        drop_noop=label_config.drop_noop,
        noop_threshold=label_config.noop_threshold,
    )
    labels = label_steps(
        episode.acted_by,
        k=label_config.k,
        retained=retained,
        episode_success=episode.meta.success,
        label_unrescued_failure=label_config.label_unrescued_failure,
    )
    n = len(episode)
    return Steps(
        images=episode.images,
        proprio=episode.states,
        environment_state=episode.environment_states,
        actions=episode.actions,
        policy_actions=episode.policy_actions,
        acted_by=episode.acted_by,
        labels=labels,
        instructions=np.full(n, episode.meta.instruction, dtype=object),
        episode_ids=np.full(n, episode.meta.episode_id, dtype=object),
        success=np.full(n, episode.meta.success),
    )


def load_steps(
    directories: Iterable[str | Path],
    label_config: LabelConfig,
    tokenizer: ActionTokenizer | None = None,
) -> Steps:
    """All episodes under ``directories`` as labelled steps (dropped steps removed).

    Failed expert demonstrations are skipped (:func:`demonstrates_task`). ``tokenizer``:
    the label filters' statistics, by default the expert demonstrations' (:func:`filter_statistics`).
    """
    directories = [Path(d) for d in directories]
    found = [item for d in directories for item in EpisodeStore(d).items()]
    check_unique(found)  # a copied or colliding episode file is refused, never trained on twice
    episodes = [e for _, e in found if demonstrates_task(e)]
    if not episodes:
        raise ValueError(f"no episodes found under {[str(d) for d in directories]}")
    tokenizer = filter_statistics(label_config, episodes, tokenizer)
    steps = Steps.concat([episode_steps(e, label_config, tokenizer) for e in episodes])
    return steps.select(steps.labels != Label.DROPPED)


def expert_mask(steps: Steps) -> np.ndarray:
    return steps.acted_by == ActedBy.EXPERT_DEMO


def poses_recorded(environment_state: np.ndarray) -> np.ndarray:
    """Rows [N, E] whose object poses were recorded. A recording without them (a real
    robot's, ingested) stores zeros; a recorded pose never is all zero, its quaternion
    having norm 1."""
    return np.any(environment_state != 0, axis=1)


def action_chunks(actions: np.ndarray, episode_ids: np.ndarray, horizon: int) -> np.ndarray:
    """Per-step actions [N, D] -> chunks [N, H, D]: row t holds the actions of steps t … t+H-1
    of its episode, the episode's last action repeated past its end. The rows of an episode
    are contiguous and in order (as :func:`load_steps` gives them)."""
    return actions[chunk_rows(episode_ids, horizon)]
