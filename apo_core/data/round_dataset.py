"""One round's data step: label + append to the LeRobot dataset, version it, record lineage.

Safe to re-run after a crash at any point: a half-written append is rolled back to the
last committed version first, episodes already in the dataset are skipped, and a round
that is already tagged is only re-pushed and re-verified, its lineage as recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from apo_core.config import ApoConfig
from apo_core.data.dataset import AppendSummary, append_round
from apo_core.data.lineage import build_record, lineage_path, read_record, write_record
from apo_core.data.versioning import DatasetVersion, DatasetWorkspace, Remote, VersioningError, tag_for


def workspace_for(config: ApoConfig) -> DatasetWorkspace:
    remote = config.dataset_remote
    if not remote.startswith("s3://"):
        remote = str(Path(remote).resolve())
    return DatasetWorkspace(config.dataset_workspace, Remote(remote, config.dataset.s3_endpoint_url))


def version_round(config: ApoConfig, round_number: int, episode_dirs: list[Path], *, resume: bool = True,
                  on_episode: Callable[[int, int], None] | None = None
                  ) -> tuple[DatasetVersion, AppendSummary | None, dict]:
    """Build, version and push the dataset of ``round_number``; returns (version, append, lineage).

    Write-once: a tagged round is never rebuilt or re-tagged. With ``resume`` (the loop's
    re-run after a crash) a tagged round is re-pushed, re-verified and its lineage taken as
    recorded; without it (asking to build a tagged round) that is an error. Rounds are
    versioned in order, from sources that exist and add episodes. ``on_episode(done,
    total)`` as episodes are labelled and appended.
    """
    if round_number < 0:
        raise VersioningError(f"round {round_number}: round numbers start at 0")
    workspace = workspace_for(config).ensure()
    tagged = [v.round for v in workspace.versions()]
    if round_number in tagged:
        if not resume:
            raise VersioningError(f"{tag_for(round_number)} exists: a versioned round is never rebuilt; the next "
                                  f"round to build is {max(tagged) + 1} (`apo dataset build {max(tagged) + 1}`)")
        version = workspace.commit_round(round_number)
        return version, None, _recorded_lineage(workspace, version, config)
    expected = max(tagged, default=-1) + 1
    if round_number != expected:
        raise VersioningError(f"round {round_number}: the next dataset round is {expected}; rounds are versioned in "
                              f"order")
    missing = [str(d) for d in episode_dirs if not Path(d).is_dir()]
    if missing or not episode_dirs:
        raise VersioningError(f"round {round_number}: no episode directory at {missing or 'any source'}")
    workspace.restore_head()
    workspace.prepare_append()
    summary = append_round(workspace.dataset_root, round_number, episode_dirs, config.labels, fps=config.env.fps,
                           on_episode=on_episode)
    if not summary.episodes_added:
        raise VersioningError(f"round {round_number}: no new episodes under {[str(d) for d in episode_dirs]}: the "
                              f"version would only repeat round {round_number - 1}'s data")
    version = workspace.commit_round(round_number)
    return version, summary, _commit_lineage(workspace, build_record(workspace.dataset_root, version, config))


def _commit_lineage(workspace: DatasetWorkspace, record: dict) -> dict:
    path = write_record(workspace.root, record)
    relative = str(path.relative_to(workspace.root))
    workspace.git("add", relative)
    if workspace.git("status", "--porcelain", "--", relative).stdout.strip():
        workspace.git("commit", "-q", "-m", f"Lineage for round {record['round']}")
    return record


def _recorded_lineage(workspace: DatasetWorkspace, version: DatasetVersion, config: ApoConfig) -> dict:
    """A tagged round's lineage as recorded; written now only if a crash came between the
    tag and the record, and only from the tree of that very version."""
    path = lineage_path(workspace.root, version.round)
    if path.exists():
        return read_record(workspace.root, version.round)
    if workspace.current_md5() != version.md5:
        raise VersioningError(f"{path}: missing, and datasets/ holds another version than {version.tag}: run "
                              f"`apo dataset checkout {version.round}`, then the round again")
    return _commit_lineage(workspace, build_record(workspace.dataset_root, version, config))
