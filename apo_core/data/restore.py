"""Restoring a dataset version: only what verifies, and never destroying the current one.

    the tag's commit and md5 == what the round's record says (lineage / manifest)
    -> fetch the version's objects into the DVC cache (remote only for what is missing)
    -> copy them into a staging directory beside datasets/, each file's md5 checked
    -> swap: datasets/ -> aside, staging -> datasets/, datasets.dvc -> the tag's
    -> the old tree is deleted only once the new one is in place

Any failure before the swap leaves the workspace exactly as it was (the staging directory
is removed, ``datasets.dvc`` keeps its bytes); the swap itself is two renames on one file
system, undone if the second fails. Files are copies, never links into the cache, so an
edit in the workspace cannot corrupt a version (docs/fault-model.md §1).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from apo_core.data.versioning import DATASET_DIR, DVC_FILE, DatasetVersion, DatasetWorkspace, VersioningError

CHUNK = 1 << 20


class IntegrityError(VersioningError):
    """A dataset version's content or identity does not match its record."""


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def check_identity(version: DatasetVersion, md5: str | None, commit: str | None, recorded_in: str) -> None:
    """The tag must point at the commit, and hold the md5, that the round's record names."""
    if commit is not None and version.commit != commit:
        raise IntegrityError(f"{version.tag}: points at commit {version.commit[:10]}, but {recorded_in} records "
                             f"{commit[:10]} (the tag was moved); refusing to restore it")
    if md5 is not None and version.md5 != md5:
        raise IntegrityError(f"{version.tag}: holds md5 {version.md5}, but {recorded_in} records {md5}; "
                             f"refusing to restore it")


def _cache_object(workspace: DatasetWorkspace, md5: str) -> Path:
    return workspace.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def _fetch(workspace: DatasetWorkspace, version: DatasetVersion) -> None:
    """Bring the version's objects into the cache; datasets.dvc keeps its bytes."""
    pointer = workspace.root / DVC_FILE
    current = pointer.read_bytes() if pointer.exists() else None
    try:
        pointer.write_text(workspace.git("show", f"{version.tag}:{DVC_FILE}").stdout)
        workspace.dvc("fetch", "-q", DVC_FILE)
    finally:
        if current is None:
            pointer.unlink(missing_ok=True)
        else:
            pointer.write_bytes(current)


def manifest(workspace: DatasetWorkspace, version: DatasetVersion) -> list[dict]:
    """The version's file list ({relpath, md5}), from its ``.dir`` object (fetched if needed)."""
    path = _cache_object(workspace, version.md5)
    if not path.exists():
        _fetch(workspace, version)
    try:
        entries = json.loads(path.read_text())
        return [{"relpath": str(entry["relpath"]), "md5": str(entry["md5"])} for entry in entries]
    except (OSError, ValueError, TypeError, KeyError):
        raise IntegrityError(f"{path}: the file list of {version.tag} is neither in the cache nor on the remote "
                             f"{workspace.remote.url}, or is unreadable (check dataset.remote)") from None


def _stage(workspace: DatasetWorkspace, version: DatasetVersion, staging: Path) -> None:
    """Copy the version's files from the cache into ``staging``, each one checked."""
    entries = manifest(workspace, version)
    if any(not _cache_object(workspace, entry["md5"]).exists() for entry in entries):
        _fetch(workspace, version)
    for entry in entries:
        source, target = _cache_object(workspace, entry["md5"]), staging / entry["relpath"]
        if not source.exists():
            raise IntegrityError(f"{source}: object of {entry['relpath']} ({version.tag}) is neither in the cache "
                                 f"nor on the remote (check dataset.remote)")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        actual = file_md5(target)
        if actual != entry["md5"]:
            source.unlink()  # a corrupt object must not be used again
            raise IntegrityError(f"{entry['relpath']}: the stored object hashes to {actual}, but {version.tag} "
                                 f"records {entry['md5']} (the cache or remote object was changed)")


def restore(workspace: DatasetWorkspace, version: DatasetVersion, then: Callable[[], None] | None = None
            ) -> DatasetVersion:
    """Put ``version`` in place of ``datasets/``, verified; all or nothing. ``then`` (e.g.
    moving the champion) runs once the new tree is in place; if it fails, the old tree and
    ``datasets.dvc`` are put back before its error is raised."""
    scratch = workspace.root / ".dvc" / "tmp" / f"apo-restore-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    staging, aside = scratch / "staged", scratch / "previous"
    pointer = workspace.root / DVC_FILE
    previous_pointer = pointer.read_bytes() if pointer.exists() else None
    current = workspace.root / DATASET_DIR
    try:
        staging.mkdir(parents=True)
        _stage(workspace, version, staging)
        pointer_text = workspace.git("show", f"{version.tag}:{DVC_FILE}").stdout
        _swap(current, staging, aside)
        try:
            pointer.write_text(pointer_text)
            if then is not None:
                then()
        except BaseException:
            shutil.rmtree(current, ignore_errors=True)
            if aside.exists():
                os.rename(aside, current)
            if previous_pointer is not None:
                pointer.write_bytes(previous_pointer)
            raise
        workspace.git("add", DVC_FILE)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return version


def _swap(current: Path, staged: Path, aside: Path) -> None:
    had_current = current.exists()
    if had_current:
        os.rename(current, aside)
    try:
        os.rename(staged, current)
    except OSError:
        if had_current:
            os.rename(aside, current)
        raise


def checkout_round(workspace: DatasetWorkspace, round_number: int, *, md5: str | None = None,
                   commit: str | None = None, recorded_in: str | None = None,
                   then: Callable[[], None] | None = None) -> DatasetVersion:
    """Restore round N's dataset (:func:`restore`) after checking its tag against the
    round's record: ``md5`` / ``commit`` as given (a model round's manifest), else the
    lineage record the workspace keeps for the round."""
    from apo_core.data.lineage import lineage_path, read_record

    version = workspace.version(round_number)
    if md5 is None and commit is None:
        path = lineage_path(workspace.root, round_number)
        if path.exists():
            record = read_record(workspace.root, round_number)
            md5, commit, recorded_in = record["dataset_md5"], record["git_commit"], str(path)
    check_identity(version, md5, commit, recorded_in or "the round's record")
    return restore(workspace, version, then)
