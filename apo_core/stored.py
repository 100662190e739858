"""Stored JSON read through a typed schema: a record of the wrong shape is refused with one
line naming the object and the key, never half-read (manifests, pointers, audit entries,
lineage records)."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from apo_core.errors import ApoError

Record = TypeVar("Record", bound=BaseModel)


def parse_stored(model: type[Record], data: bytes | str, where: str, repair: str = "",
                 error: type[ApoError] = ApoError) -> Record:
    """``data`` as a ``model``, or ``error`` naming ``where``, the key and what was wrong."""
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{where}: not valid JSON ({str(exc).splitlines()[0]}){repair}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "(the whole object)"
        given = first.get("input")
        shown = "" if isinstance(given, (dict, list)) else f" (got {given!r})"
        raise error(f"{where}: {key}: {first['msg']}{shown}{repair}") from None
