"""The update: round 0 by behaviour cloning, round k+1 by a preference method from round k,
saved atomically with one training record (what it was trained on, and how).

    a round's dataset version (the loop, `apo reproduce`)  \\
                                                             -> train -> model/ + training.json
    episode folders (`apo train`, by hand)                   /

Nothing here imports Prefect or Ray: ``tasks/round_tasks.py`` wraps :func:`train_round`.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from apo_core import workdir
from apo_core.config import ApoConfig, Method, TrainConfig
from apo_core.data.lineage import config_hash, read_record
from apo_core.data.replay import update_episodes
from apo_core.data.round_dataset import workspace_for
from apo_core.data.steps import Steps, expert_mask, load_steps
from apo_core.data.training_steps import steps_from_dataset
from apo_core.data.versioning import DatasetVersion
from apo_core.envs import MetaWorldEnv
from apo_core.errors import ApoError, mask_credentials
from apo_core.labels import ActedBy, Label
from apo_core.policy import Policy, initial_policy, load_policy
from apo_core.recording.store import EpisodeStore, episode_dirs_under


def train_policy(config: ApoConfig, steps: Steps, method: Method, work_dir: Path, *,
                 reference: Policy | None = None, on_step=None, on_notice=None) -> Policy:
    """Round 0 by behaviour cloning (``bc``: from ``policy.pretrained`` or a fresh policy),
    or round k+1 by ``method`` from ``reference``.

    ``reference`` (round k) is consumed: its module receives the update.
    """
    from apo_core.training import train

    if method == "bc":
        demonstrations = steps.select(expert_mask(steps))
        if not len(demonstrations):
            raise ValueError("behaviour cloning needs expert demonstration steps; none were given")
        reference = initial_policy(config.policy, demonstrations, image_size=config.env.image_size,
                                   action_dim=MetaWorldEnv.action_dim, gripper_dim=MetaWorldEnv.gripper_dim,
                                   seed=config.train.seed)
    elif reference is None:
        raise ApoError(f"{method} needs the reference: the previous round's model")
    return train(reference, steps, method, config.train, work_dir, on_step=on_step, on_notice=on_notice)


def training_record(config: ApoConfig, method: Method, steps: Steps, data: dict) -> dict:
    """The one schema of a training record: the method, the data (``data``: a dataset's tag
    and md5, or the episode folders and their fingerprint), its size, the threads, the
    code and the config."""
    from apo_core.loop.report import code_commit

    return {"method": method, **data, "rows": len(steps), "episodes": len(set(steps.episode_ids)),
            "threads": config.train.threads, "code_commit": code_commit(), "config_hash": config_hash(config),
            "config": json.loads(mask_credentials(json.dumps(config.model_dump(mode="json"))))}


def save_model(policy: Policy, directory: Path, record: dict) -> Path:
    """Save a trained policy with its training record, atomically: the directory appears
    complete or not at all."""
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    policy.save_pretrained(partial)
    workdir.training_record_path(partial).write_text(json.dumps(record, indent=2))
    if directory.exists():
        shutil.rmtree(directory)
    partial.rename(directory)
    return directory


def episodes_read(workspace_root: Path, version: DatasetVersion, method: Method, train: TrainConfig
                  ) -> dict[str, list[str]] | None:
    """What an update of ``version`` reads (apo_core/data/replay.py): the demonstrations,
    the round's episodes and ``train.replay_episodes`` of earlier rounds, chosen from the
    version's lineage record; None: every episode (behaviour cloning, or no replay limit)."""
    if method == "bc" or train.replay_episodes is None:
        return None
    record = read_record(workspace_root, version.round)
    return update_episodes(record["episodes"], version.round, train.replay_episodes, train.seed)


def dataset_steps(config: ApoConfig, version: DatasetVersion, *, images: bool,
                  episodes: dict[str, list[str]] | None = None) -> Steps:
    """Dataset round N (``episodes`` of it when given) as training steps, read from the
    workspace, which must hold exactly that version (the round's dataset step has just built
    or verified it)."""
    workspace = workspace_for(config)
    if workspace.current_md5() != version.md5:
        raise ApoError(f"{workspace.root}: datasets/ holds md5 {workspace.current_md5()}, not {version.tag}'s "
                       f"{version.md5}: `apo dataset checkout {version.round}` first")
    return steps_from_dataset(workspace.dataset_root, images=images, md5=version.md5, episodes=selected(episodes))


def selected(episodes: dict[str, list[str]] | None) -> list[str] | None:
    """The sorted ids of an update's episodes, or None (all)."""
    return None if episodes is None else sorted(id_ for group in episodes.values() for id_ in group)


def train_from_dataset(config: ApoConfig, steps: Steps, version: DatasetVersion, method: Method, work: Path,
                       reference: Policy | None, episodes: dict[str, list[str]] | None = None, on_step=None,
                       on_notice=None) -> tuple[Policy, dict]:
    """Train on a dataset version (``episodes`` of it); the policy and its training record."""
    policy = train_policy(config, steps, method, work, reference=reference, on_step=on_step, on_notice=on_notice)
    data = {"dataset_tag": version.tag, "dataset_md5": version.md5, "episodes_read": episodes}
    return policy, training_record(config, method, steps, data)


def train_round(config: ApoConfig, round_number: int, method: Method, reference_dir: Path | None,
                version: DatasetVersion, on_step=None, on_notice=None) -> Path:
    """Train model round N on dataset round N as versioned; the result appears atomically
    (or not at all)."""
    directory = workdir.model_dir(config, round_number)
    if directory.is_dir():  # saved atomically: complete
        return directory
    reference = load_policy(reference_dir) if method != "bc" and reference_dir else None
    images = reference.needs_image if reference is not None else config.policy.use_image
    episodes = episodes_read(config.dataset_workspace, version, method, config.train)
    steps = dataset_steps(config, version, images=images, episodes=episodes)
    work = workdir.training_work_dir(config, round_number)
    policy, record = train_from_dataset(config, steps, version, method, work, reference, episodes, on_step, on_notice)
    save_model(policy, directory, record)
    shutil.rmtree(work, ignore_errors=True)
    return directory


def episode_folders(config: ApoConfig, method: Method, data: list[Path] | None) -> list[Path]:
    """The episode folders an update by hand reads: below each of ``data`` (any folder above
    episode files), or else every one the workdir holds for ``method`` (bc: the
    demonstrations; an update: the demonstrations, every round's and every other collection)."""
    if data:
        return [folder for root in data for folder in episode_dirs_under(root)]
    return workdir.collection_dirs(config, config.env.tasks, demonstrations_only=method == "bc")


def _what_was_read(folders: list[Path], steps: Steps | None) -> str:
    """The folders read and what they held, in a user's words."""
    held = ", ".join(f"{folder} ({len(EpisodeStore(folder))} episodes)" for folder in folders) or "no folder"
    if steps is None:
        return f"read {held}"
    counts = Counter(int(label) for label in steps.labels)
    demos = int(np.sum(steps.acted_by == ActedBy.EXPERT_DEMO))
    return (f"read {held}: {len(steps)} steps, {demos} of demonstrations, {counts[Label.AUTONOMOUS] - demos} of the "
            f"robot acting alone, {counts[Label.FAILURE_PRONE]} before a takeover, {counts[Label.HUMAN]} of the "
            f"human taking over")


def train_on_episodes(config: ApoConfig, method: Method, data: list[Path] | None, reference_dir: Path | None,
                      out: Path, on_step=None, on_notice=None) -> tuple[Path, Steps, list[Path]]:
    """`apo train`: a model from episode folders (BC from scratch, or an update of the model
    in ``reference_dir``), saved to ``out`` with its training record."""
    if method != "bc" and reference_dir is None:
        raise ApoError(f"--method {method} needs --from: the previous round's model (the reference)")
    folders = episode_folders(config, method, data)
    where = ", ".join(str(d) for d in data) if data else str(workdir.episodes_dir(config))
    if not folders:
        raise ApoError(f"no episodes under {where}: record some first (apo collect, or apo demo)")
    reference = load_policy(reference_dir) if reference_dir is not None else None
    try:
        steps = load_steps(folders, config.labels, reference.action_normalizer if reference else None)
    except ValueError as error:
        raise ApoError(f"{_what_was_read(folders, None)}: {error}") from None
    if method == "bc" and not np.any(steps.acted_by == ActedBy.EXPERT_DEMO):
        raise ApoError(f"bc: {_what_was_read(folders, steps)}; behaviour cloning learns from demonstrations: "
                       f"record them with apo collect --policy expert")
    if method != "bc" and not np.any(steps.labels == Label.HUMAN):
        raise ApoError(f"{method}: {_what_was_read(folders, steps)}; an update learns from the human's corrections: "
                       f"collect with the human watching (apo collect --policy <round or model folder>)")
    try:
        policy = train_policy(config, steps, method, out.with_name(out.name + ".work"), reference=reference,
                              on_step=on_step, on_notice=on_notice)
    except ValueError as error:
        raise ApoError(str(error)) from None
    data_record = {"episode_directories": [str(d) for d in folders], "data_fingerprint": steps.fingerprint()}
    save_model(policy, out, training_record(config, method, steps, data_record))
    shutil.rmtree(out.with_name(out.name + ".work"), ignore_errors=True)
    return out, steps, folders
