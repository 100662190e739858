"""`apo status`: the operator's view of a loop with several rounds, from the stores alone."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from apo_core.action_tokenizer import ActionTokenizer
from apo_core.config import load_config
from apo_core.policy import ApoVlaConfig, ApoVlaPolicy, instruction_vocab
from apo_core.registry.store import registry_for
from apo_core.workdir import interaction_dir, round_dir

pytestmark = pytest.mark.slow  # published rounds and a workdir driven through the CLI


def apo(*args):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=120)


def test_status_reports_champion_last_decision_and_interactions_until_the_next_round(tmp_path, small_round_dirs):
    workdir = tmp_path / "work"
    config = load_config(None, {"paths": {"workdir": str(workdir)}})
    torch.manual_seed(0)
    model = tmp_path / "model"
    ApoVlaPolicy(ApoVlaConfig(instruction_vocab=instruction_vocab(["push the puck to the goal"])),
                 ActionTokenizer.fit(np.random.default_rng(0).normal(size=(50, 4)))).save_pretrained(model)
    registry = registry_for(config)
    for number, success in ((0, 0.2), (1, 0.15), (2, 0.45)):
        registry.publish(number, model, parent_round=number - 1 if number else None, method="apo",
                         dataset={"md5": f"md5-{number}.dir", "git_tag": f"dataset-round-{number:04d}",
                                  "git_commit": "abc"}, hyperparameters={}, metrics={"success_rate": success})
        round_dir(config, number).mkdir(parents=True)
        (round_dir(config, number) / "round.json").write_text(json.dumps({"round": number}))
    registry.set_champion(0, action="promote", who="pipeline", reason="first round: no champion yet")
    registry.record_rejection(1, who="pipeline", reason="not significantly better")
    registry.set_champion(2, action="promote", who="pipeline", reason="significantly better: +25%")
    pending = interaction_dir(config, 3, config.env.tasks[0], "sim-robot-0")
    pending.mkdir(parents=True)
    for path in sorted(small_round_dirs[1].glob("episode-*.parquet"))[:2]:
        shutil.copy(path, pending / path.name)

    shown = apo("--workdir", str(workdir), "status")
    assert shown.returncode == 0, shown.stderr
    assert "champion       round 2" in shown.stdout and "dataset-round-0002" in shown.stdout
    assert "promote round 2" in shown.stdout and "significantly better: +25%" in shown.stdout
    assert "round 3: 2 of 20 interactions collected, 18 to go" in shown.stdout

    as_json = apo("--workdir", str(workdir), "status", "--json")
    status = json.loads(as_json.stdout)
    assert status["champion"]["round"] == 2 and status["champion"]["success_rate"] == 0.45
    assert status["last_decision"]["action"] == "promote" and status["last_decision"]["round"] == 2
    assert (status["pending_round"], status["interactions_collected"], status["interactions_until_next_round"]) == (
        3, 2, 18)


def test_status_before_any_round(tmp_path):
    shown = apo("--workdir", str(tmp_path / "empty"), "status")
    assert shown.returncode == 0, shown.stderr
    assert "no champion yet" in shown.stdout
