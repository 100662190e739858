"""The model store's records, each read through a typed schema: a record of the wrong shape
is refused with one line naming the object and the key, never half-read.

    RoundManifest   rounds/NNNN/manifest.json   the round's files (sha256), lineage, metrics
    ChampionPointer champion.json               the champion, and the audit entry that set it
    AuditEntry      audit/<time>-<id>.json      one decision: promote, reject, rollback, or the
                                                abort of a move that lost its compare-and-swap
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from apo_core.registry.object_store import RegistryError
from apo_core.stored import parse_stored

MOVES = ("promote", "rollback")  # the actions that move the champion


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RoundManifest(_Record):
    round: int
    files: dict[str, str]  # name -> sha256
    parent_round: int | None
    method: str
    dataset: dict  # md5, git_tag, git_commit
    hyperparameters: dict
    metrics: dict
    created_at: float = Field(default_factory=time.time)


class ChampionPointer(_Record):
    round: int
    dataset: dict = Field(default_factory=dict)
    metrics: dict = Field(default_factory=dict)
    set_at: float | None = None
    set_by: str | None = None
    audit_id: str | None = None  # the audit entry whose move this is (None: written before entries had ids)


class AuditEntry(_Record):
    id: str = ""  # the object's name (set when read)
    at: float
    action: Literal["promote", "reject", "rollback", "aborted"]
    from_round: int | None
    to_round: int
    who: str
    reason: str
    metrics: dict = Field(default_factory=dict)
    dataset: dict = Field(default_factory=dict)
    aborts: str | None = None  # for "aborted": the id of the move that did not happen


def parse(model: type[_Record], data: bytes, where: str, repair: str = "") -> _Record:
    """``data`` as a ``model``, or RegistryError naming ``where``, the key and what was wrong."""
    return parse_stored(model, data, where, repair, RegistryError)
