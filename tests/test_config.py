"""One typed config, validated at the door."""

import pytest

from apo_core.config import DEFAULT_CONFIG_PATH, load_config
from apo_core.errors import ConfigError


def test_defaults_load_and_describe_the_suite():
    config = load_config()
    assert len(config.env.tasks) >= 4
    assert config.labels.k == 10 and config.collect.interactions_per_round == 20
    kinds = {p.kind for p in config.evaluation.perturbations}
    assert kinds == {"object_shift", "table_color", "lighting", "camera"}
    assert config.perturbation("lighting").seed == 3


def test_overrides_merge_over_the_file(tmp_path):
    config = load_config(DEFAULT_CONFIG_PATH, {"paths": {"workdir": str(tmp_path)}, "labels": {"k": 4}})
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
    ({"train": {"z0_clamp": [5.0, -5.0]}}, "z0_clamp"),
    ({"train": {"epochs": 0}}, "train.epochs"),
    ({"evaluation": {"seed": 800_000_000, "test_seed": 800_000_010}}, "overlap"),
])
def test_non_finite_values_inverted_ranges_and_overlapping_seeds_are_refused(overrides, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, overrides)
