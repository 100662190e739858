"""The config as people read it, generated from the models so it cannot drift from them:
``configs/default.yaml`` (every default, commented), ``docs/configuration.md`` (a table
per section) and `apo config show` (the effective values and where each came from)."""

from __future__ import annotations

import inspect
import json
import textwrap
from typing import Any

import yaml
from pydantic import BaseModel

from apo_core.config.root import ApoConfig
from apo_core.config.world import EvaluationConfig, PerturbationConfig

REQUIRED = "required"

YAML_HEADER = """\
# Every default of the pipeline, generated from the config models (apo_core/config/):
# do not edit; `make config-docs` writes it again. Copy the keys you change into your own
# file and pass it with `apo --config my.yaml ...`: a file names only what it changes.
# docs/configuration.md describes every field."""

MARKDOWN_HEADER = """\
# Configuration

Generated from the config models (`apo_core/config/`) by `make config-docs`; a test
checks that it is current. Every `apo` command reads one validated config, layered:

1. the defaults below (also in `configs/default.yaml`, every key commented);
2. your file, `apo --config my.yaml ...`, which names only the keys it changes
   (mappings merge key by key; lists are replaced whole);
3. the command line: `--workdir`, `--set KEY=VALUE` (e.g. `--set train.lr=1e-4`), and a
   command's own flags such as `apo train --epochs`.

Unknown keys, non-finite numbers and out-of-range values are refused before anything
runs, with the file and the field named. `apo config show` prints the effective config of
a run and where each value came from; `--json` for machines.
"""


def default_yaml() -> str:
    """``configs/default.yaml``: every section and field with its default and description."""
    lines = [YAML_HEADER]
    defaults = ApoConfig().model_dump(mode="json")
    for name, field in ApoConfig.model_fields.items():
        lines.append("")
        lines += _yaml_field(name, field, defaults[name], "")
    return "\n".join(lines) + "\n"


def _yaml_field(name: str, field, value: Any, indent: str) -> list[str]:
    section = _section_model(field)
    if section is None:
        return _comment(field.description, indent) + _yaml_entry(name, value, indent)
    lines = _comment(f"{name}: {_summary(section)}", indent) + [f"{indent}{name}:"]
    for key, sub in section.model_fields.items():
        lines += _yaml_field(key, sub, value[key], indent + "  ")
    return lines


def configuration_markdown() -> str:
    """``docs/configuration.md``: per section, its purpose and a table of its fields."""
    defaults = ApoConfig().model_dump(mode="json")
    top_level = [(name, defaults[name], field.description) for name, field in ApoConfig.model_fields.items()
                 if _section_model(field) is None]
    parts = [MARKDOWN_HEADER]
    for name, field in ApoConfig.model_fields.items():
        if _section_model(field) is not None:
            parts += _markdown_section(name, _section_model(field), defaults[name], "##")
    return "\n".join(parts + ["## Top level", "", *_table(top_level)])


def _markdown_section(name: str, section: type[BaseModel], values: dict, heading: str) -> list[str]:
    rows, nested = [], []
    for key, sub in section.model_fields.items():
        if _section_model(sub) is None:
            rows.append((key, values[key], sub.description))
        else:
            nested += _markdown_section(f"{name}.{key}", _section_model(sub), values[key], heading + "#")
    parts = [f"{heading} `{name}`", "", _docstring(section), "", *_table(rows)]
    if section is EvaluationConfig:
        parts += ["Each entry of `perturbations`:", "", *_table(
            (key, REQUIRED if sub.is_required() else sub.default, sub.description)
            for key, sub in PerturbationConfig.model_fields.items())]
    return parts + nested


def show_text(config: ApoConfig, sources: dict[str, str]) -> str:
    """Every effective value, one per line, with where it came from."""
    from apo_core.config.loading import leaf_values

    values = leaf_values(config.model_dump(mode="json"))
    width = max(len(key) for key in values)
    return "\n".join(f"{key:<{width}}  {json.dumps(value)}  ({sources[key]})" for key, value in values.items())


def show_json(config: ApoConfig, sources: dict[str, str]) -> str:
    return json.dumps({"config": config.model_dump(mode="json"), "sources": sources}, indent=2)


def _section_model(field) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _table(rows) -> list[str]:
    lines = ["| key | default | description |", "|---|---|---|"]
    for key, value, description in rows:
        shown = REQUIRED if value is REQUIRED else f"`{_inline(value)}`"
        lines.append(f"| `{key}` | {shown} | {description.replace('|', chr(92) + '|')} |")
    return lines + [""]


def _yaml_entry(key: str, value: Any, indent: str) -> list[str]:
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return [f"{indent}{key}:"] + [f"{indent}  - {_inline(item)}" for item in value]
    return [f"{indent}{key}: {_inline(value)}"]


def _inline(value: Any) -> str:
    """One JSON-like value in YAML flow style, on one line."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000)
    return text.removesuffix("\n").removesuffix("\n...")


def _comment(text: str | None, indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in textwrap.wrap(text or "", 96 - len(indent))]


def _docstring(model: type[BaseModel]) -> str:
    return " ".join(inspect.getdoc(model).split())


def _summary(model: type[BaseModel]) -> str:
    return _docstring(model).split(". ")[0].rstrip(".")
