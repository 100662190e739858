"""Model rounds: immutable rounds, a champion pointer, a promote gate, an audit log.

Layout (the same in S3 and in a local directory; ``aws s3 ls`` shows it as is):

    rounds/0003/model.safetensors        write-once files of round 3
    rounds/0003/config.json
    rounds/0003/action_stats.json
    rounds/0003/manifest.json            written LAST: sha256 of every file, parent round,
                                         dataset md5 + git tag, method, hyper-parameters, metrics
    champion.json                        {"round": 3, ...}, replaced by compare-and-swap only
    audit/20261122T010203.123456Z-<uuid>.json   one object per event, never overwritten

* Write-once (apo_core/registry/object_store.py): a round without a complete manifest is invisible,
  so a crash while uploading leaves nothing that can be loaded or promoted.
* Champion compare-and-swap: of two concurrent promotions exactly one wins.
* Loading, deploying or rolling back to a round re-hashes every file against its manifest.
* A corrupt ``champion.json`` is reported with its repair: ``apo rollback N`` rewrites it
  from round N's manifest (the pointer is derived data; the manifests are the truth).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from apo_core.registry.object_store import (
    AlreadyExists,
    Backend,
    Conflict,
    CorruptPointer,
    NotFound,
    RegistryError,
    backend_for,
    sha256_hex,
)
from apo_core.registry.records import MOVES, AuditEntry, ChampionPointer, RoundManifest, parse

if TYPE_CHECKING:
    from apo_core.config import ApoConfig

MANIFEST = "manifest.json"
CHAMPION = "champion.json"


def round_prefix(round_number: int) -> str:
    return f"rounds/{round_number:04d}/"


class ModelRegistry:
    def __init__(self, backend: Backend):
        self.backend = backend

    # ----- rounds -------------------------------------------------------------------
    def publish(
        self,
        round_number: int,
        model_dir: Path,
        *,
        parent_round: int | None,
        method: str,
        dataset: dict,
        hyperparameters: dict,
        metrics: dict,
    ) -> RoundManifest:
        """Upload a saved model as round N: every file write-once, the manifest last.

        Checked before anything is stored: round N is new, ``model_dir`` holds regular files
        only and no manifest of its own, and ``parent_round`` (when given) is a stored round.
        """
        prefix = round_prefix(round_number)
        if self._stored(round_number):
            raise AlreadyExists(f"{self.backend.location}/{prefix}: round {round_number} exists already")
        if (Path(model_dir) / MANIFEST).exists():
            raise RegistryError(f"{Path(model_dir) / MANIFEST}: a model directory must not hold a {MANIFEST}: the "
                                f"store writes each round's own, and a round's identity comes from the store")
        paths = model_files(model_dir)
        if parent_round is not None and not self._stored(parent_round):
            raise RegistryError(f"parent round {parent_round}: not a round of {self.backend.location} (`apo rounds` "
                                f"lists them); a round's parent is the stored round it was trained from")
        files = {}
        for path in paths:
            data = _read_regular(path)
            files[path.name] = sha256_hex(data)
            try:
                self.backend.put_new(prefix + path.name, data)
            except AlreadyExists:
                # Left by a crashed publish of this round: reuse it only if identical.
                if sha256_hex(self.backend.get(prefix + path.name)[0]) != files[path.name]:
                    raise
        manifest = RoundManifest(round=round_number, files=files, parent_round=parent_round, method=method,
                                 dataset=dataset, hyperparameters=hyperparameters, metrics=metrics)
        self.backend.put_new(prefix + MANIFEST, manifest.model_dump_json(indent=2).encode())
        return manifest

    def _stored(self, round_number: int) -> bool:
        """Whether round N has its manifest: is a round of the store."""
        return round_prefix(round_number) + MANIFEST in self.backend.list(round_prefix(round_number))

    def manifest(self, round_number: int) -> RoundManifest:
        where = f"{self.backend.location}/{round_prefix(round_number)}{MANIFEST}"
        data, _ = self.backend.get(round_prefix(round_number) + MANIFEST)
        manifest = parse(RoundManifest, data, where, f"; round {round_number} cannot be used")
        if manifest.round != round_number:
            raise RegistryError(f"{where}: round: the manifest says round {manifest.round}; round {round_number} "
                                f"cannot be used")
        return manifest

    def rounds(self) -> list[RoundManifest]:
        """Every round with a manifest (rounds cut off mid-upload have none: invisible)."""
        numbers = sorted({int(key.split("/")[1]) for key in self.backend.list("rounds/") if key.endswith(MANIFEST)})
        return [self.manifest(n) for n in numbers]

    def round_file(self, round_number: int, name: str) -> bytes:
        """One file of round N, checked against its manifest's sha256."""
        digest = self.manifest(round_number).files.get(name)
        if digest is None:
            raise NotFound(f"{self.backend.location}/{round_prefix(round_number)}{name}: not a file of round "
                           f"{round_number}")
        data, _ = self.backend.get(round_prefix(round_number) + name)
        if sha256_hex(data) != digest:
            raise RegistryError(f"{self.backend.location}/{round_prefix(round_number)}{name}: sha256 mismatch "
                                f"(tampered or truncated)")
        return data

    def download(self, round_number: int, destination: Path) -> Path:
        """Fetch round N into ``destination`` after checking every file's sha256."""
        manifest = self.manifest(round_number)
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        for name, digest in manifest.files.items():
            data, _ = self.backend.get(round_prefix(round_number) + name)
            if sha256_hex(data) != digest:
                raise RegistryError(
                    f"{self.backend.location}/{round_prefix(round_number)}{name}: sha256 mismatch "
                    f"(tampered or truncated); refusing to load round {round_number}"
                )
            (destination / name).write_bytes(data)
        return destination

    # ----- champion and audit -------------------------------------------------------
    def champion(self) -> tuple[dict | None, str | None]:
        """The champion pointer and its etag (None, None before the first promotion).

        A pointer that cannot be read raises :class:`CorruptPointer`, whose message names the
        repair: ``apo rollback N`` rewrites it from round N's manifest.
        """
        try:
            data, etag = self.backend.get(CHAMPION)
        except NotFound:
            return None, None
        repair = "; repair it with `apo rollback N --reason ...` (rebuilt from round N's manifest)"
        try:
            pointer = parse(ChampionPointer, data, f"{self.backend.location}/{CHAMPION}", repair)
        except RegistryError as corrupt:
            raise CorruptPointer(str(corrupt), etag) from None
        return pointer.model_dump(), etag

    def matches(self, round_number: int, directory: Path) -> bool:
        """Whether a local copy of round N holds exactly its manifest's files (sha256)."""
        manifest = self.manifest(round_number)
        directory = Path(directory)
        return all((directory / name).is_file() and sha256_hex((directory / name).read_bytes()) == digest
                   for name, digest in manifest.files.items())

    def verify(self, round_number: int) -> RoundManifest:
        """Re-hash every file of round N against its manifest; RegistryError names a bad one."""
        manifest = self.manifest(round_number)
        for name, digest in manifest.files.items():
            data, _ = self.backend.get(round_prefix(round_number) + name)
            if sha256_hex(data) != digest:
                raise RegistryError(f"{self.backend.location}/{round_prefix(round_number)}{name}: sha256 mismatch "
                                    f"(tampered or truncated); round {round_number} cannot be deployed")
        return manifest

    def _record(self, event: dict) -> dict:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"
        entry = AuditEntry(id=f"{stamp}-{uuid.uuid4().hex[:8]}", at=time.time(), **event)
        self.backend.put_new(f"audit/{entry.id}.json", entry.model_dump_json(indent=2, exclude={"id"}).encode())
        return entry.model_dump()

    def set_champion(self, round_number: int, *, action: str, who: str, reason: str, expected_etag: str | None = "read"):
        """Point the champion at round N: the audit entry first, then the pointer by
        compare-and-swap, naming that entry. A crash in between leaves an entry that the
        next promotion or rollback completes (:meth:`complete_pending_move`); a lost
        compare-and-swap is recorded as that entry's abort.

        ``expected_etag="read"`` reads the current etag first; pass the etag seen when the
        decision was made to make the whole decide-then-promote step race-free.
        """
        manifest = self.manifest(round_number)  # the round must exist and be complete
        try:
            current, etag = self.champion()
        except CorruptPointer as corrupt:
            if action != "rollback":
                raise
            current, etag = None, corrupt.etag  # the repair: replace the unreadable pointer
        if expected_etag != "read":
            etag = expected_etag
        entry = self._record({
            "action": action, "from_round": current["round"] if current else None, "to_round": round_number,
            "who": who, "reason": reason, "metrics": headline(manifest.metrics), "dataset": manifest.dataset,
        })
        try:
            self._point(entry, etag)
        except Conflict:
            self._record({"action": "aborted", "from_round": entry["from_round"], "to_round": round_number,
                          "who": who, "reason": "the champion changed concurrently", "aborts": entry["id"]})
            raise
        return entry

    def _point(self, entry: dict, etag: str | None) -> None:
        manifest = self.manifest(entry["to_round"])
        pointer = ChampionPointer(round=entry["to_round"], dataset=manifest.dataset, metrics=headline(manifest.metrics),
                                  set_at=time.time(), set_by=entry["who"], audit_id=entry["id"])
        self.backend.replace(CHAMPION, pointer.model_dump_json(indent=2).encode(), etag)

    def pending_move(self) -> dict | None:
        """The last champion move the audit log records but the pointer does not show: a
        crash came between the entry and the compare-and-swap."""
        log = self.audit_log()
        aborted = {e["aborts"] for e in log if e["action"] == "aborted"}
        moves = [e for e in log if e["action"] in MOVES and e["id"] not in aborted]
        if not moves:
            return None
        champion, _ = self.champion()
        latest = moves[-1]
        if champion is None:
            return latest
        if champion["audit_id"] is None:  # a pointer written before entries had ids
            return latest if champion["round"] != latest["to_round"] else None
        return latest if champion["audit_id"] != latest["id"] else None

    def complete_pending_move(self) -> dict | None:
        """Finish the move of :meth:`pending_move`, if any; returns its entry."""
        entry = self.pending_move()
        if entry is not None:
            _, etag = self.champion()
            self._point(entry, etag)
        return entry

    def record_rejection(self, round_number: int, *, who: str, reason: str) -> dict:
        current, _ = self.champion()
        manifest = self.manifest(round_number)
        return self._record({
            "action": "reject", "from_round": current["round"] if current else None, "to_round": round_number,
            "who": who, "reason": reason, "metrics": headline(manifest.metrics), "dataset": manifest.dataset,
        })

    # ----- reports ------------------------------------------------------------------
    def publish_report(self, round_number: int, name: str, data: bytes) -> str | None:
        """Store a file of round N's report (write-once; a re-run of the step keeps the
        first) and return a URL a browser can open, or None where the store has none."""
        key = f"reports/{round_number:04d}/{name}"
        try:
            self.backend.put_new(key, data)
        except AlreadyExists:
            pass
        return self.backend.shareable_url(key)

    def audit_log(self) -> list[dict]:
        """Every entry, oldest first, each read through its schema."""
        repair = "; a corrupt audit entry: the log is append-only, move that object aside (nothing else is lost)"
        events = []
        for key in sorted(self.backend.list("audit/")):
            entry = parse(AuditEntry, self.backend.get(key)[0], f"{self.backend.location}/{key}", repair)
            entry_id = key.removeprefix("audit/").removesuffix(".json")
            events.append(entry.model_copy(update={"id": entry_id}).model_dump())
        return events

    def decisions(self) -> list[dict]:
        """The promote, reject and rollback entries that took effect, oldest first (an
        ``aborted`` entry says the move of the entry it names never happened)."""
        log = self.audit_log()
        aborted = {event["aborts"] for event in log if event["action"] == "aborted"}
        return [e for e in log if e["action"] in ("promote", "reject", "rollback") and e["id"] not in aborted]


def model_files(model_dir: Path) -> list[Path]:
    """The files a round is stored from: every entry of ``model_dir``, each a regular file.

    A symbolic link anywhere in it is refused (it could carry a file from outside the
    directory, ``/etc/passwd`` say, into the store), and so is a subdirectory or any other
    entry that is not a regular file (the store keeps a round's top-level files only).
    """
    model_dir = Path(model_dir)
    for root, directories, names in os.walk(model_dir):  # never follows a link
        for name in sorted(directories + names):
            if (Path(root) / name).is_symlink():
                raise RegistryError(f"{Path(root) / name}: a symbolic link (to {os.readlink(Path(root) / name)}); a "
                                    f"round is stored from regular files only: copy the file itself into {model_dir}")
    paths = sorted(model_dir.iterdir())
    for path in paths:
        if path.is_dir():
            raise RegistryError(f"{path}: a subdirectory; the store keeps a round's top-level files only and would "
                                f"leave it out: move its files up or remove it")
        if not path.is_file():
            raise RegistryError(f"{path}: not a regular file; a round is stored from regular files only")
    return paths


def _read_regular(path: Path) -> bytes:
    """A file's bytes, refusing a link put in its place since it was checked."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as error:
        raise RegistryError(f"{path}: cannot read it as a regular file ({error.strerror})") from None
    with os.fdopen(descriptor, "rb") as handle:
        return handle.read()


def headline(metrics: dict) -> dict:
    """Metrics without the per-seed outcomes: what the champion pointer and audit log repeat."""
    return {key: value for key, value in metrics.items() if key != "outcomes"}


def registry_for(config: ApoConfig) -> ModelRegistry:
    """The model store a config names (``registry.url``; default ``<workdir>/model-store``)."""
    return ModelRegistry(backend_for(config.registry_url, config.registry.s3_endpoint_url))
