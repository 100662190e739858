"""The episode store: a directory of finished episodes, appended to by any number of writers.

On-disk contract (a directory per collection and robot, e.g.
``episodes/round-0003/push/sim-robot-0/``): ``episode-000017.parquet``, one file per
finished episode (apo_core/recording/episodes.py: columns and metadata).

* A file is first written under a temporary name of its own writer
  (``.episode-000017.parquet.<host>-<pid>-<random>.tmp``), fsynced, then hard-linked to its
  final name (atomic on POSIX, and never over an existing episode) and the directory
  fsynced: a finished episode is on disk before the next starts; a kill -9 loses at most
  the episode being recorded and never leaves a half-written ``episode-*.parquet``.
* Several writers may share a directory: an index taken by another writer first is
  reported (:class:`IndexTaken`) so the episode is renumbered, never dropped or written
  over, and a writer only ever removes the temporary files of writers that died on its
  own host.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from apo_core.errors import ApoError, DuplicateEpisodeError
from apo_core.recording.episodes import Episode, episode_to_table, read_episode

_FILE_PATTERN = re.compile(r"^episode-(\d{6})\.parquet$")
_TEMP_PATTERN = re.compile(r"^\.episode-\d{6}\.parquet\.(?:(?P<host>[^.]+)-(?P<pid>\d+)-[0-9a-f]+\.)?tmp$")
HOST_TAG = socket.gethostname().replace(".", "_").replace("-", "_") or "host"


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IndexTaken(ApoError):
    """Another writer recorded an episode under this index first: renumber and write again."""


def _writer_alive(host: str | None, pid: str | None) -> bool:
    """Whether the writer a temporary file names may still be writing it (other hosts: assume so)."""
    if host is None:  # the format before per-writer names: one writer per directory
        return False
    if host != HOST_TAG:
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EpisodeStore:
    """A directory of finished episodes; appends only, each write atomic and durable.

    ``EpisodeStore(dir)`` reads; :meth:`for_writing` writes (and removes the half-written
    files that writers which died on this host left behind; never another live writer's).
    """

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    @classmethod
    def for_writing(cls, directory: str | Path) -> EpisodeStore:
        store = cls(directory)
        try:
            store.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ApoError(f"{store.directory}: cannot create the episode directory: {exc.strerror}") from None
        if not os.access(store.directory, os.W_OK | os.X_OK):
            raise ApoError(f"{store.directory}: episode directory is not writable")
        for stale in store.directory.glob(".episode-*.tmp"):
            match = _TEMP_PATTERN.match(stale.name)
            if match and not _writer_alive(match["host"], match["pid"]):
                stale.unlink(missing_ok=True)  # an episode cut off mid-write by a crash; never visible
        return store

    def paths(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _FILE_PATTERN.match(p.name))

    def next_index(self) -> int:
        indices = [int(_FILE_PATTERN.match(p.name).group(1)) for p in self.paths()]
        return max(indices, default=-1) + 1

    def path_for(self, episode_index: int) -> Path:
        return self.directory / f"episode-{episode_index:06d}.parquet"

    def write(self, episode: Episode) -> Path:
        """Write one finished episode under its index; :class:`IndexTaken` if that index is
        already on disk (recorded by another writer, or earlier): nothing is overwritten."""
        final = self.path_for(episode.meta.episode_index)
        if final.exists():
            raise IndexTaken(f"{final}: episode index {episode.meta.episode_index} is already recorded")
        temporary = final.with_name(f".{final.name}.{HOST_TAG}-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
        table = episode_to_table(episode)
        try:
            with open(temporary, "wb") as handle:
                pq.write_table(table, handle, compression="zstd")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, final)  # atomic, and refuses to replace a recorded episode
        except FileExistsError:
            raise IndexTaken(f"{final}: episode index {episode.meta.episode_index} is already recorded") from None
        except OSError as error:
            raise ApoError(f"{final}: cannot write the episode: {error.strerror or error} "
                           f"(check free space and permissions of {self.directory})") from None
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_directory(self.directory)
        return final

    def __iter__(self) -> Iterator[Episode]:
        for path in self.paths():
            yield read_episode(path)

    def items(self) -> Iterator[tuple[Path, Episode]]:
        for path in self.paths():
            yield path, read_episode(path)

    def __len__(self) -> int:
        return len(self.paths())


def episode_dirs_under(root: str | Path) -> list[Path]:
    """``root`` if it holds episodes, else every directory below it that does, in order (a
    collection's folder, a task's, a robot's: any folder above the episode files)."""
    root = Path(root)
    if len(EpisodeStore(root)):
        return [root]
    if not root.is_dir():
        return []
    return [d for d in sorted(p for p in root.rglob("*") if p.is_dir()) if len(EpisodeStore(d))]


def check_unique(episodes: list[tuple[Path, Episode]], known: dict[str, str] | None = None) -> None:
    """Refuse duplicates: one episode per id and per content, among ``episodes`` (path, episode)
    and against ``known`` (id -> content sha256 of the episodes already in a dataset).

    A copy of an episode file under another name, or a different episode whose id collides
    with one already used, is an error naming both: never trained twice, never skipped.
    An episode already in ``known`` with the same id AND content is fine (a re-run).
    """
    known = dict(known or {})
    owner_of_content = {digest: episode_id for episode_id, digest in known.items()}
    seen_ids: dict[str, Path] = {}
    seen_content: dict[str, Path] = {}
    for path, episode in episodes:
        episode_id, digest = episode.meta.episode_id, episode.content_sha256()
        if episode_id in seen_ids:
            raise DuplicateEpisodeError(f"{path}: episode id {episode_id!r} is also the id of {seen_ids[episode_id]}")
        if digest in seen_content:
            raise DuplicateEpisodeError(f"{path}: the same episode as {seen_content[digest]} (a copy under another "
                                        f"name or index)")
        if episode_id in known and known[episode_id] != digest:
            raise DuplicateEpisodeError(f"{path}: episode id {episode_id!r} is already in the dataset with other "
                                        f"content")
        if digest in owner_of_content and owner_of_content[digest] != episode_id:
            raise DuplicateEpisodeError(f"{path}: the same episode as {owner_of_content[digest]!r}, already in the "
                                        f"dataset under that id")
        seen_ids[episode_id], seen_content[digest] = path, path
