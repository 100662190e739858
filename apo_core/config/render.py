"""The config as people read it, generated from the models so it cannot drift from them:
``configs/default.yaml`` (every default, commented), ``docs/configuration.md`` (a table
per section) and `apo config show` (the effective values and where each came from)."""

from __future__ import annotations

import inspect
import json
import textwrap
from types import UnionType
from typing import Any, Union, get_args, get_origin

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
    sections = _section_models(field)
    if not sections:
        return _comment(field.description, indent) + _yaml_entry(name, value, indent)
    section = _chosen(field, sections, value)
    lines = _comment(f"{name}: {_summary(section)}", indent)
    if len(sections) > 1:
        kinds = ", ".join(_tag(field, other) for other in sections)
        lines += _comment(f"{name}.{field.discriminator}: one of {kinds}, each with its own fields "
                          "(docs/configuration.md)", indent)
    lines.append(f"{indent}{name}:")
    for key, sub in section.model_fields.items():
        lines += _yaml_field(key, sub, value[key], indent + "  ")
    return lines


def configuration_markdown() -> str:
    """``docs/configuration.md``: per section, its purpose and a table of its fields."""
    defaults = ApoConfig().model_dump(mode="json")
    top_level = [(name, defaults[name], field.description) for name, field in ApoConfig.model_fields.items()
                 if not _section_models(field)]
    parts = [MARKDOWN_HEADER]
    for name, field in ApoConfig.model_fields.items():
        parts += _markdown_sections(name, field, defaults[name], "##")
    return "\n".join(parts + ["## Top level", "", *_table(top_level)])


def _markdown_sections(name: str, field, value: Any, heading: str) -> list[str]:
    """A field's section, or one per kind of a union (the others' with their own defaults)."""
    sections = _section_models(field)
    if len(sections) == 1:
        return _markdown_section(f"`{name}`", name, sections[0], value, heading)
    return [line for section in sections for line in _markdown_section(
        f"`{name}` with `{field.discriminator}: {_tag(field, section)}`", name, section,
        value if section is _chosen(field, sections, value) else section().model_dump(mode="json"), heading)]


def _markdown_section(title: str, name: str, section: type[BaseModel], values: dict, heading: str) -> list[str]:
    rows, nested = [], []
    for key, sub in section.model_fields.items():
        if _section_models(sub):
            nested += _markdown_sections(f"{name}.{key}", sub, values[key], heading + "#")
        else:
            rows.append((key, values[key], sub.description))
    parts = [f"{heading} {title}", "", _docstring(section), "", *_table(rows)]
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


def _section_models(field) -> list[type[BaseModel]]:
    """The section classes a field holds: one, or one per kind of a discriminated union."""
    annotation = field.annotation
    members = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    return [member for member in members if isinstance(member, type) and issubclass(member, BaseModel)]


def _tag(field, section: type[BaseModel]) -> str:
    return section.model_fields[field.discriminator].default


def _chosen(field, sections: list[type[BaseModel]], value: dict) -> type[BaseModel]:
    """The section class of ``value``: the union's member its discriminator names."""
    if len(sections) == 1:
        return sections[0]
    return next(section for section in sections if _tag(field, section) == value[field.discriminator])


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
