"""Restoring a dataset version: only what verifies, and never destroying the current one.

    the tag's commit and md5 == what the round's record says (lineage / manifest)
    -> fetch the version's objects into the DVC cache (remote only for what is missing)
    -> the file list (the ``.dir`` object) hashes to its name, the md5 the tag and the record hold
    -> copy the files into a staging directory beside datasets/, each file's md5 checked
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

from apo_core.data.versioning import (
    DATASET_DIR,
    DVC_FILE,
    DatasetVersion,
    DatasetWorkspace,
    VersioningError,
    cause_line,
)

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


def _remote_object(workspace: DatasetWorkspace, md5: str) -> str:
    return f"{workspace.remote.url.rstrip('/')}/files/md5/{md5[:2]}/{md5[2:]}"


def _fetch(workspace: DatasetWorkspace, version: DatasetVersion) -> str:
    """Bring the version's objects into the cache; datasets.dvc keeps its bytes. Returns what
    DVC said (its warning that objects are on neither side, say), to be named if one is missing."""
    pointer = workspace.root / DVC_FILE
    current = pointer.read_bytes() if pointer.exists() else None
    try:
        pointer.write_text(workspace.git("show", f"{version.tag}:{DVC_FILE}").stdout)
        result = workspace.dvc("fetch", DVC_FILE)
    except VersioningError as error:
        raise VersioningError(f"{version.tag} ({version.md5}): {error}") from None
    finally:
        if current is None:
            pointer.unlink(missing_ok=True)
        else:
            pointer.write_bytes(current)
    said = cause_line(result) if result.stderr.strip() else ""
    return f" (`dvc fetch` said: {said})" if said else ""


def _fetched(workspace: DatasetWorkspace, version: DatasetVersion) -> tuple[str, VersioningError | None]:
    """:func:`_fetch`, its failure returned: a listing it did bring is checked before that is told."""
    try:
        return _fetch(workspace, version), None
    except VersioningError as error:
        return "", error


def _listing_bytes(workspace: DatasetWorkspace, version: DatasetVersion) -> bytes:
    """The ``.dir`` object of ``version``, verified: DVC names it by the md5 of its bytes (the
    JSON list as stored), and that name is the md5 the tag's datasets.dvc and the round's record
    hold. DVC fetches it without checking; one from the cache that fails is fetched once more."""
    path, expected = _cache_object(workspace, version.md5), version.md5.removesuffix(".dir")
    fetched = not path.exists()
    said, failure = _fetched(workspace, version) if fetched else ("", None)
    while True:
        data = path.read_bytes() if path.is_file() else None
        actual = None if data is None else hashlib.md5(data).hexdigest()
        if actual == expected:
            if failure is not None:
                raise failure
            return data
        if data is not None:
            path.unlink()  # a changed listing must not be used again, by us or by DVC
        if fetched and data is not None:
            raise IntegrityError(f"{_remote_object(workspace, version.md5)}: the file list of {version.tag} on the "
                                 f"remote {workspace.remote.url} hashes to {actual}, not to its name {expected} "
                                 f"(the md5 datasets.dvc and the round's record hold): the object was changed; "
                                 f"refusing to restore it")
        if fetched:
            raise failure or IntegrityError(f"{path}: the file list of {version.tag} is neither in the cache nor on "
                                            f"the remote {workspace.remote.url}{said} (check dataset.remote)")
        fetched = True
        said, failure = _fetched(workspace, version)


def manifest(workspace: DatasetWorkspace, version: DatasetVersion) -> list[dict]:
    """The version's file list ({relpath, md5}), from its verified ``.dir`` object."""
    data = _listing_bytes(workspace, version)
    try:
        entries = [{"relpath": str(entry["relpath"]), "md5": str(entry["md5"])} for entry in json.loads(data)]
    except (ValueError, TypeError, KeyError):
        raise IntegrityError(f"{_cache_object(workspace, version.md5)}: the file list of {version.tag} is not "
                             f"DVC's list of {{relpath, md5}}") from None
    for entry in entries:
        relpath = Path(entry["relpath"])
        if relpath.is_absolute() or ".." in relpath.parts:
            raise IntegrityError(f"{_remote_object(workspace, version.md5)}: the file list of {version.tag} names "
                                 f"{entry['relpath']!r}, outside datasets/; refusing to restore it")
    return entries


def _stage(workspace: DatasetWorkspace, version: DatasetVersion, staging: Path) -> None:
    """Copy the version's files from the cache into ``staging``, each one checked."""
    entries, said = manifest(workspace, version), ""
    if any(not _cache_object(workspace, entry["md5"]).exists() for entry in entries):
        said = _fetch(workspace, version)
    for entry in entries:
        source, target = _cache_object(workspace, entry["md5"]), staging / entry["relpath"]
        if not source.exists():
            raise IntegrityError(f"{source}: object of {entry['relpath']} ({version.tag}) is neither in the cache "
                                 f"nor on the remote {workspace.remote.url}{said} (check dataset.remote)")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        actual = file_md5(target)
        if actual != entry["md5"]:
            source.unlink()  # a corrupt object must not be used again
            raise IntegrityError(f"{entry['relpath']}: the stored object hashes to {actual}, but {version.tag} "
                                 f"records {entry['md5']} (the cache or remote object "
                                 f"{_remote_object(workspace, entry['md5'])} was changed)")


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
