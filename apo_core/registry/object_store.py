"""Write-once object stores for the model registry: a local directory, or S3 through boto3.

Both offer the same four operations (:class:`Backend`): ``put_new`` (write-once: S3
``PutObject(IfNoneMatch="*")``; local: an exclusive hard link), ``get`` (bytes + etag),
``replace`` (compare-and-swap: S3 ``PutObject(IfMatch=<etag>)``; local: an exclusive lock,
a content check and an atomic rename) and ``list``. Every failure is a
:class:`RegistryError` of one line that names the object and what to check.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from pathlib import Path
from typing import Protocol

from apo_core.errors import ApoError


class RegistryError(ApoError):
    """A model-store operation failed (missing, tampered, or refused)."""


class NotFound(RegistryError):
    """The object does not exist."""


class CorruptPointer(RegistryError):
    """champion.json cannot be read; ``etag`` lets a rollback replace it (the repair)."""

    def __init__(self, message: str, etag: str | None):
        super().__init__(message)
        self.etag = etag


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

    def shareable_url(self, key: str) -> str | None: ...


def sha256_hex(data: bytes) -> str:
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
            raise NotFound(f"{self._path(key)}: not found") from None
        except OSError as error:
            raise RegistryError(f"{self._path(key)}: cannot read: {error.strerror}") from None
        return data, sha256_hex(data)

    def replace(self, key: str, data: bytes, expected_etag: str | None) -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(f".{path.name}.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            current = sha256_hex(path.read_bytes()) if path.exists() else None
            if current != expected_etag:
                raise Conflict(f"{path}: changed concurrently (expected {expected_etag}, found {current})")
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            temporary.write_bytes(data)
            os.replace(temporary, path)
        return sha256_hex(data)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.exists():
            return []
        return sorted(
            str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file() and not p.name.startswith(".")
        )

    def shareable_url(self, key: str) -> None:
        """None: a local file is nothing a browser elsewhere (the Prefect UI) can open."""
        return None


PRESIGNED_URL_SECONDS = 7 * 24 * 3600
_ACCESS_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken",
                 "AllAccessDisabled"}
_CONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}


class S3Backend:
    """Any S3 endpoint through boto3 (``AWS_ENDPOINT_URL`` or ``endpoint_url``).

    Every failure becomes one :class:`RegistryError` line that names the bucket/key and
    what to check; none ever echoes a credential.
    """

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None):
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.endpoint_url = endpoint_url
        # Fail in seconds, not minutes, on a wrong endpoint; a few retries for a flaky network.
        settings = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, config=settings)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, key: str, operation, **kwargs):
        """``operation(**kwargs)``, its failures as RegistryError lines (conditions passed through)."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        where = f"{self.location}/{key}"
        try:
            return operation(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _CONDITION_CODES:
                raise
            if code in ("NoSuchKey", "404"):
                raise NotFound(f"{where}: not found") from None
            if code == "NoSuchBucket":
                raise RegistryError(f"{self.location}: the bucket {self.bucket!r} does not exist "
                                    f"(check registry.url)") from None
            if code in _ACCESS_CODES:
                raise RegistryError(f"{where}: S3 refused access ({code}): check the AWS credentials and the "
                                    f"bucket's policy") from None
            raise RegistryError(f"{where}: S3 {code or 'error'}") from None
        except EndpointConnectionError:
            endpoint = self.endpoint_url or "AWS"
            raise RegistryError(f"{self.location}: cannot reach the S3 endpoint {endpoint} (check "
                                f"registry.s3_endpoint_url / AWS_ENDPOINT_URL and the network)") from None
        except (NoCredentialsError, PartialCredentialsError):
            raise RegistryError(f"{self.location}: no usable AWS credentials (set AWS_ACCESS_KEY_ID and "
                                f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)") from None
        except BotoCoreError as exc:
            raise RegistryError(f"{where}: the S3 request failed ({type(exc).__name__}); objects already "
                                f"written stay valid, re-run to continue") from None

    def put_new(self, key: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        try:
            self._call(key, self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except ClientError:  # a condition: the key exists
            raise AlreadyExists(f"{self.location}/{key}: exists already; rounds are write-once") from None

    def get(self, key: str) -> tuple[bytes, str]:
        response = self._call(key, self.client.get_object, Bucket=self.bucket, Key=self._key(key))
        return response["Body"].read(), response["ETag"]

    def replace(self, key: str, data: bytes, expected_etag: str | None) -> str:
        from botocore.exceptions import ClientError

        condition = {"IfMatch": expected_etag} if expected_etag else {"IfNoneMatch": "*"}
        try:
            response = self._call(key, self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data,
                                  **condition)
        except ClientError:  # a condition: someone else changed it first
            raise Conflict(f"{self.location}/{key}: changed concurrently") from None
        return response["ETag"]

    def list(self, prefix: str) -> list[str]:
        keys = []
        pages = self._call(prefix, lambda: list(self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._key(prefix))))
        for page in pages:
            keys += [item["Key"][len(self.prefix) + 1 if self.prefix else 0 :] for item in page.get("Contents", [])]
        return sorted(keys)

    def shareable_url(self, key: str) -> str:
        """A presigned GET of ``key``: a browser opens it without credentials for a week
        (SigV4's longest expiry); signing makes no request."""
        return self.client.generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": self._key(key)},
                                                  ExpiresIn=PRESIGNED_URL_SECONDS)


def backend_for(url: str, endpoint_url: str | None = None) -> Backend:
    """``s3://bucket/prefix`` -> S3Backend; anything else is a local directory."""
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return S3Backend(bucket, prefix, endpoint_url)
    return LocalBackend(url)
