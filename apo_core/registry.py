"""Model rounds: immutable rounds, a champion pointer, a promote gate, an audit log.

Layout (the same in S3 and in a local directory; ``aws s3 ls`` shows it as is):

    rounds/0003/model.safetensors        write-once files of round 3
    rounds/0003/config.json
    rounds/0003/action_stats.json
    rounds/0003/manifest.json            written LAST: sha256 of every file, parent round,
                                         dataset md5 + git tag, method, hyper-parameters, metrics
    champion.json                        {"round": 3, ...}, replaced by compare-and-swap only
    audit/20261122T010203.123456Z-<uuid>.json   one object per event, never overwritten

* Write-once: S3 ``PutObject(IfNoneMatch="*")``; local: ``O_CREAT | O_EXCL`` via a hard link.
  A round without a complete manifest is invisible, so a crash while uploading leaves
  nothing that can be loaded or promoted.
* Champion compare-and-swap: S3 ``PutObject(IfMatch=<etag>)``; local: an exclusive lock,
  a content check and an atomic rename. Of two concurrent promotions exactly one wins.
* Loading a round re-hashes every file against its manifest.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from apo_core.errors import ApoError

MANIFEST = "manifest.json"
CHAMPION = "champion.json"


class RegistryError(ApoError):
    """A model-store operation failed (missing, tampered, or refused)."""


class AlreadyExists(RegistryError):
    """A write-once object exists already."""


class Conflict(RegistryError):
    """A compare-and-swap lost: someone else changed the object first."""


class Backend(Protocol):
    """Object storage with write-once puts and compare-and-swap (etag) replaces."""

    location: str

    def put_new(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> tuple[bytes, str]: ...

    def replace(self, key: str, data: bytes, expected_etag: str | None) -> str: ...

    def list(self, prefix: str) -> list[str]: ...


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalBackend:
    """A directory. Etags are the sha256 of the content."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.location = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def put_new(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # atomic and exclusive
        except FileExistsError:
            raise AlreadyExists(f"{path}: exists already; rounds are write-once") from None
        finally:
            temporary.unlink()

    def get(self, key: str) -> tuple[bytes, str]:
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            raise RegistryError(f"{self._path(key)}: not found") from None
        return data, _sha256(data)

    def replace(self, key: str, data: bytes, expected_etag: str | None) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = _sha256(path.read_bytes()) if path.exists() else None
            if current != expected_etag:
                raise Conflict(f"{path}: changed concurrently (expected {expected_etag}, found {current})")
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            temporary.write_bytes(data)
            os.replace(temporary, path)
        return _sha256(data)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        )


class S3Backend:
    """Any S3 endpoint through boto3 (``AWS_ENDPOINT_URL`` or ``endpoint_url``)."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, exc, key: str) -> RegistryError:
        code = exc.response.get("Error", {}).get("Code", "")
        return RegistryError(f"{self.location}/{key}: S3 {code or 'error'}")  # never echoes credentials

    def put_new(self, key: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise AlreadyExists(f"{self.location}/{key}: exists already; rounds are write-once") from None
            raise self._error(exc, key) from None

    def get(self, key: str) -> tuple[bytes, str]:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise RegistryError(f"{self.location}/{key}: not found") from None
            raise self._error(exc, key) from None
        return response["Body"].read(), response["ETag"]

    def replace(self, key: str, data: bytes, expected_etag: str | None) -> str:
        from botocore.exceptions import ClientError

        condition = {"IfMatch": expected_etag} if expected_etag else {"IfNoneMatch": "*"}
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise Conflict(f"{self.location}/{key}: changed concurrently") from None
            raise self._error(exc, key) from None
        return response["ETag"]

    def list(self, prefix: str) -> list[str]:
        keys = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys += [item["Key"][len(self.prefix) + 1 if self.prefix else 0 :] for item in page.get("Contents", [])]
        return sorted(keys)


def backend_for(url: str, endpoint_url: str | None = None) -> Backend:
    """``s3://bucket/prefix`` -> S3Backend; anything else is a local directory."""
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return S3Backend(bucket, prefix, endpoint_url)
    return LocalBackend(url)


def round_prefix(round_number: int) -> str:
    return f"rounds/{round_number:04d}/"


@dataclass(frozen=True)
class RoundManifest:
    round: int
    files: dict[str, str]  # name -> sha256
    parent_round: int | None
    method: str
    dataset: dict  # md5, git_tag, git_commit
    hyperparameters: dict
    metrics: dict
    created_at: float = field(default_factory=time.time)


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
        """Upload a saved model as round N: every file write-once, the manifest last."""
        prefix = round_prefix(round_number)
        if self.backend.list(prefix + MANIFEST):
            raise AlreadyExists(f"{self.backend.location}/{prefix}: round {round_number} exists already")
        files = {}
        for path in sorted(Path(model_dir).iterdir()):
            if path.is_file():
                data = path.read_bytes()
                files[path.name] = _sha256(data)
                try:
                    self.backend.put_new(prefix + path.name, data)
                except AlreadyExists:
                    # Left by a crashed publish of this round: reuse it only if identical.
                    if _sha256(self.backend.get(prefix + path.name)[0]) != files[path.name]:
                        raise
        manifest = RoundManifest(round_number, files, parent_round, method, dataset, hyperparameters, metrics)
        self.backend.put_new(prefix + MANIFEST, json.dumps(asdict(manifest), indent=2).encode())
        return manifest

    def manifest(self, round_number: int) -> RoundManifest:
        data, _ = self.backend.get(round_prefix(round_number) + MANIFEST)
        return RoundManifest(**json.loads(data))

    def rounds(self) -> list[RoundManifest]:
        """Every round with a manifest (rounds cut off mid-upload have none: invisible)."""
        numbers = sorted({int(key.split("/")[1]) for key in self.backend.list("rounds/") if key.endswith(MANIFEST)})
        return [self.manifest(n) for n in numbers]

    def download(self, round_number: int, destination: Path) -> Path:
        """Fetch round N into ``destination`` after checking every file's sha256."""
        manifest = self.manifest(round_number)
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        for name, digest in manifest.files.items():
            data, _ = self.backend.get(round_prefix(round_number) + name)
            if _sha256(data) != digest:
                raise RegistryError(
                    f"{self.backend.location}/{round_prefix(round_number)}{name}: sha256 mismatch "
                    f"(tampered or truncated); refusing to load round {round_number}"
                )
            (destination / name).write_bytes(data)
        return destination

    # ----- champion and audit -------------------------------------------------------
    def champion(self) -> tuple[dict | None, str | None]:
        """The champion pointer and its etag (None, None before the first promotion)."""
        try:
            data, etag = self.backend.get(CHAMPION)
        except RegistryError:
            return None, None
        return json.loads(data), etag

    def _record(self, event: dict) -> dict:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1_000_000:06d}Z"
        event = {"at": time.time(), **event}
        self.backend.put_new(f"audit/{stamp}-{uuid.uuid4().hex[:8]}.json", json.dumps(event, indent=2).encode())
        return event

    def set_champion(self, round_number: int, *, action: str, who: str, reason: str, expected_etag: str | None = "read"):
        """Point the champion at round N by compare-and-swap, and audit it.

        ``expected_etag="read"`` reads the current etag first; pass the etag seen when the
        decision was made to make the whole decide-then-promote step race-free.
        """
        manifest = self.manifest(round_number)  # the round must exist and be complete
        current, etag = self.champion()
        if expected_etag != "read":
            etag = expected_etag
        pointer = {"round": round_number, "dataset": manifest.dataset, "metrics": headline(manifest.metrics),
                   "set_at": time.time(), "set_by": who}
        self.backend.replace(CHAMPION, json.dumps(pointer, indent=2).encode(), etag)
        return self._record({
            "action": action, "from_round": current["round"] if current else None, "to_round": round_number,
            "who": who, "reason": reason, "metrics": headline(manifest.metrics), "dataset": manifest.dataset,
        })

    def record_rejection(self, round_number: int, *, who: str, reason: str) -> dict:
        current, _ = self.champion()
        manifest = self.manifest(round_number)
        return self._record({
            "action": "reject", "from_round": current["round"] if current else None, "to_round": round_number,
            "who": who, "reason": reason, "metrics": headline(manifest.metrics), "dataset": manifest.dataset,
        })

    def audit_log(self) -> list[dict]:
        return [json.loads(self.backend.get(key)[0]) for key in self.backend.list("audit/")]



def headline(metrics: dict) -> dict:
    """Metrics without the per-seed outcomes: what the champion pointer and audit log repeat."""
    return {key: value for key, value in metrics.items() if key != "outcomes"}
