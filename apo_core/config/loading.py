"""Loading a config: the models' defaults, then a YAML file, then the command line.

A file only needs the keys it changes (mappings merge key by key; lists are replaced
whole). Every error names the file and the field, and where each value came from is
kept, for `apo config show`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from apo_core.config.root import ApoConfig
from apo_core.errors import ConfigError

COMMAND_LINE = "command line"
DEFAULT = "default"


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ApoConfig:
    """The validated config: the defaults, ``path`` (a YAML file) over them, ``overrides``
    (a nested dict: the command line's) over both. Raises :class:`ConfigError` naming the
    file and the field on any problem."""
    return load_with_sources(path, overrides)[0]


def load_with_sources(path: str | Path | None = None, overrides: dict[str, Any] | None = None
                      ) -> tuple[ApoConfig, dict[str, str]]:
    """:func:`load_config`, and where each value came from: ``{"train.lr": "default" |
    <the file> | "command line"}`` for every leaf (a list is one leaf)."""
    file_layer = _read_yaml(Path(path)) if path is not None else {}
    merged = deep_merge(deep_merge(ApoConfig().model_dump(mode="json"), file_layer), overrides or {})
    try:
        config = ApoConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path) if path is not None else COMMAND_LINE)) from None
    sources = {key: COMMAND_LINE if _sets(overrides or {}, key) else str(path) if _sets(file_layer, key) else DEFAULT
               for key in leaf_values(config.model_dump(mode="json"))}
    return config, sources


def with_overrides(config: ApoConfig, overrides: dict[str, Any], source: str = COMMAND_LINE) -> ApoConfig:
    """``config`` with a nested dict of overrides, validated like a file (errors name ``source``)."""
    try:
        return ApoConfig.model_validate(deep_merge(config.model_dump(mode="json"), overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """``["train.lr=1e-4", "collect.robots=3"]`` -> a nested override dict (values read as YAML)."""
    nested: dict[str, Any] = {}
    for assignment in assignments:
        key, equals, value = assignment.partition("=")
        if not equals or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE with a dotted key, e.g. train.lr=1e-4")
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {assignment!r}: {part} is set to a value and a mapping at once")
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {assignment!r}: the value is not valid YAML") from None
    return nested


def leaf_values(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 3e-4}}`` -> ``{"train.lr": 3e-4}``; lists are leaves."""
    leaves: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            leaves.update(leaf_values(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def _sets(layer: dict[str, Any], dotted: str) -> bool:
    node: Any = layer
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        given = item.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {field}: {message}{shown}" if field else f"{source}: {message}")
    return "; ".join(lines)


def _read_yaml(source: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(source.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` laid on ``base``, mapping by mapping; a mapping that names another ``kind``
    (a policy of another kind) replaces the one below it: its fields start from that kind's
    defaults, not the other kind's values."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        same_kind = isinstance(below, dict) and value.get("kind", below.get("kind")) == below.get("kind") \
            if isinstance(value, dict) else False
        if same_kind:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
