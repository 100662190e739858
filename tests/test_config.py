"""One typed config, validated at the door; its defaults in one place, generated into the
YAML file and the reference page; `apo config show` says where each value came from."""

import json
import subprocess
import sys
from pathlib import Path
from types import UnionType
from typing import get_args

import pytest
from pydantic import BaseModel

from apo_core.config import POLICY_CONFIGS, ApoConfig, PerturbationConfig, load_config, with_overrides
from apo_core.config.loading import leaf_values, load_with_sources
from apo_core.config.render import configuration_markdown, default_yaml
from apo_core.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
DEFAULTS_FILE = REPO / "configs" / "default.yaml"


def test_defaults_load_and_describe_the_suite():
    config = load_config()
    assert len(config.env.tasks) >= 4
    assert config.labels.k == 10 and config.collect.interactions_per_round == 20
    kinds = {p.kind for p in config.evaluation.perturbations}
    assert kinds == {"object_shift", "table_color", "lighting", "camera"}
    assert config.perturbation("lighting").seed == 3


def test_the_default_policy_sees_and_the_state_option_reads_poses():
    camera = load_config()
    assert camera.policy.use_image and camera.policy.state_inputs == "proprio"  # no poses, no goal
    assert camera.policy.vision_encoder == "conv" and camera.policy.chunk_size == 4
    assert camera.policy.estimate_objects and camera.env.tasks[:2] == ["button-press-topdown", "drawer-open"]
    state = load_config(Path(__file__).resolve().parent.parent / "configs" / "state.yaml")
    assert not state.policy.use_image and state.policy.state_inputs == "proprio+objects"
    assert state.env.tasks[: state.loop_tasks] == ["push"]


def test_overrides_merge_over_the_file(tmp_path):
    config = load_config(DEFAULTS_FILE, {"paths": {"workdir": str(tmp_path)}, "labels": {"k": 4}})
    assert config.paths.workdir == tmp_path and config.labels.k == 4
    assert config.env.camera == "corner2"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("labels:\n  k: -1\n", "labels.k"),
        ("takeover:\n  divergence_step: 3\n", "takeover.divergence_step: Extra inputs are not permitted"),
        ("env:\n  tasks: []\n", "at least one task"),
        ("evaluation:\n  perturbations:\n    - {name: x, kind: fog, magnitude: 1}\n", "evaluation.perturbations.0.kind"),
        ("env: [unclosed\n", "not valid YAML"),
        ("- a list\n", "expected a mapping"),
        ("train: {aux_object_weight: 0}\n", "policy.estimate_objects needs"),
        ("policy: {use_image: false}\n", "policy: estimate_objects needs use_image: true"),
        ("policy: {kind: paligemma-fast, conv_channels: 64}\n",
         "policy.conv_channels: a field of policy kind apo-vla, not of paligemma-fast (got 64)"),
        ("policy: {fast_scale: 4.0}\n", "policy.fast_scale: a field of policy kind paligemma-fast, not of apo-vla"),
        ("policy: {kind: octo}\n", "policy.kind: Input should be 'apo-vla' or 'paligemma-fast' (got 'octo')"),
        ("policy: {kind: paligemma-fast, fast_scale: 0}\n", "policy.fast_scale: Input should be greater than 0"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path, text, expected):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_missing_file_and_unknown_perturbation(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="unknown perturbation suite 'fog'"):
        load_config().perturbation("fog")


def test_a_user_file_changes_only_what_it_names(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("env:\n  max_steps: 50\n")
    config = load_config(path)
    assert config.env.max_steps == 50 and config.env.camera == "corner2"
    assert len(config.evaluation.perturbations) == 4


@pytest.mark.parametrize("overrides,field", [
    ({"train": {"lr": float("inf")}}, "train.lr"),
    ({"registry": {"promote_margin": float("nan")}}, "registry.promote_margin"),
    ({"train": {"kto": {"z0_clamp": [5.0, -5.0]}}}, "train.kto"),
    ({"train": {"epochs": 0}}, "train.epochs"),
    ({"evaluation": {"seed": 800_000_000, "test_seed": 800_000_010}}, "overlap"),
])
def test_non_finite_values_inverted_ranges_and_overlapping_seeds_are_refused(overrides, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, overrides)


def test_the_defaults_file_and_the_reference_page_are_generated_from_the_models():
    """`make config-docs` writes both; they must be current (committed as generated)."""
    assert DEFAULTS_FILE.read_text() == default_yaml(), "configs/default.yaml is stale: run `make config-docs`"
    assert (REPO / "docs" / "configuration.md").read_text() == configuration_markdown(), \
        "docs/configuration.md is stale: run `make config-docs`"


def test_the_yaml_defaults_agree_with_the_models_field_by_field():
    from_file = leaf_values(load_config(DEFAULTS_FILE).model_dump(mode="json"))
    from_models = leaf_values(ApoConfig().model_dump(mode="json"))
    assert from_file == from_models


def _sections(model: type[BaseModel]):
    yield model
    for field in model.model_fields.values():
        members = get_args(field.annotation) if isinstance(field.annotation, UnionType) else (field.annotation,)
        for member in members:  # a union: one section per policy kind
            if isinstance(member, type) and issubclass(member, BaseModel):
                yield from _sections(member)


def test_each_policy_kind_has_its_section_in_the_config():
    sections = {model for model in _sections(ApoConfig)}
    assert set(POLICY_CONFIGS.values()) <= sections and len(POLICY_CONFIGS) == 2


def test_every_config_field_has_a_description():
    undocumented = [f"{model.__name__}.{name}" for model in [*_sections(ApoConfig), PerturbationConfig]
                    for name, field in model.model_fields.items() if not (field.description or "").strip()]
    assert undocumented == []


def apo(*args):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=120)


def test_config_show_names_where_each_value_came_from(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("train:\n  lr: 0.001\n  kto:\n    ratios: {correct: 0.6, human: 0.2, failure: 0.2}\n")
    result = apo("--config", str(mine), "--set", "train.epochs=3", "--workdir", str(tmp_path / "w"),
                 "config", "show", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["config"]["train"]["lr"] == 0.001 and shown["config"]["train"]["epochs"] == 3
    sources = shown["sources"]
    assert sources["train.lr"] == sources["train.kto.ratios.correct"] == str(mine)
    assert sources["train.apo.ratios.correct"] == "default"
    assert sources["train.epochs"] == sources["paths.workdir"] == "command line"
    assert sources["train.batch_size"] == sources["env.tasks"] == "default"
    assert set(sources) == set(leaf_values(shown["config"]))

    text = apo("--config", str(mine), "config", "show")
    assert text.returncode == 0, text.stderr
    line = next(line for line in text.stdout.splitlines() if line.startswith("train.lr "))
    assert "0.001" in line and line.endswith(f"({mine})")


@pytest.mark.parametrize("assignment,expected", [
    ("train.lr", "expected KEY=VALUE"),
    ("train.lr=-1", "command line: train.lr"),
    ("train.learning_rate=0.1", "train.learning_rate: Extra inputs are not permitted"),
    ("policy.chunk_size=300", "policy.chunk_size 300 does not fit an episode of env.max_steps 200"),
    ("env.camera=wrist", "env.camera: Input should be 'corner', 'corner2'"),
    ("policy.vision_encoder=siglip", "policy.patch_size 16 must divide env.image_size 84"),
    ("policy.fast_scale=4", "policy.fast_scale: a field of policy kind paligemma-fast, not of apo-vla (got 4)"),
])
def test_a_bad_set_is_one_line(assignment, expected):
    image = ["--set", "policy.use_image=true", "--set", "env.image_size=84"] if "siglip" in assignment else []
    result = apo(*image, "--set", assignment, "config", "show")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr


def test_a_policy_kind_alone_gives_that_kinds_section_and_defaults(tmp_path):
    """`policy: {kind: paligemma-fast}` alone is a working config: the camera default's
    estimate_objects is apo-vla's, not every kind's."""
    path = tmp_path / "fast.yaml"
    path.write_text("policy: {kind: paligemma-fast}\n")
    config, sources = load_with_sources(path)
    section = POLICY_CONFIGS["paligemma-fast"]
    assert type(config.policy) is section and config.policy == section()
    assert config.policy.fast_scale == 10.0 and not hasattr(config.policy, "estimate_objects")
    assert sources["policy.kind"] == str(path) and sources["policy.fast_vocab_size"] == "default"
    assert "policy.estimate_objects" not in sources
    assert with_overrides(load_config(), {"policy": {"kind": "paligemma-fast"}}).policy == section()
    back = with_overrides(config, {"policy": {"kind": "apo-vla"}})
    assert back.policy == load_config().policy and back.policy.estimate_objects


def test_siglip_patches_and_the_object_estimate_are_checked_for_their_kind_only():
    fast = {"kind": "paligemma-fast", "patch_size": 16}
    with pytest.raises(ConfigError, match="policy.patch_size 16 must divide env.image_size 84"):
        load_config(None, {"policy": fast, "env": {"image_size": 84}})
    assert load_config(None, {"policy": {**fast, "use_image": False}, "env": {"image_size": 84}}).policy.patch_size
    assert load_config(None, {"policy": {"kind": "paligemma-fast"}, "train": {"aux_object_weight": 0}}).policy.kind \
        == "paligemma-fast"
    assert load_config(None, {"env": {"image_size": 84}}).policy.vision_encoder == "conv"  # conv: no patches


def test_a_config_stored_with_every_kinds_fields_still_validates():
    """A round's training record holds the whole config as it was dumped when the policy
    section was one flat model of every kind's fields; `apo reproduce` validates it."""
    flat = {"pretrained": None, "state_inputs": "proprio+goal", "estimate_objects": False, "use_image": True,
            "vision_encoder": "conv", "conv_channels": 32, "keypoints": 16, "patch_size": 16,
            "vision_hidden_size": 64, "vision_layers": 2, "hidden_size": 128, "decoder_layers": 2, "chunk_size": 4,
            "fast_scale": 5.0, "fast_vocab_size": 256}
    stored = ApoConfig().model_dump(mode="json")
    fast = ApoConfig.model_validate({**stored, "policy": {"kind": "paligemma-fast", **flat}}).policy
    assert fast.kind == "paligemma-fast" and fast.fast_scale == 5.0 and fast.state_inputs == "proprio+goal"
    vla = ApoConfig.model_validate({**stored, "policy": {"kind": "apo-vla", **flat}}).policy
    assert vla.kind == "apo-vla" and not vla.estimate_objects and vla.conv_channels == 32


def test_the_config_imports_no_torch():
    """`apo config show` and the flows' parameters read the config: it imports the policy
    sections, never the models."""
    code = "import sys, apo_core.config; assert 'torch' not in sys.modules, sorted(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert result.returncode == 0, result.stderr
