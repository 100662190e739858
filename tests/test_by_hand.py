"""The README's loop by hand, run as written: collect demonstrations, clone, collect with
the human watching, update, evaluate, publish; for both policy kinds, the second named by
``policy.kind`` alone. Only the budgets are made small (``--set``), never the commands."""

import shlex
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from apo_core.recording.store import EpisodeStore

pytestmark = pytest.mark.slow  # seven CLI processes per policy kind, the world rendered

SMALL = ["train.bc_steps=30", "train.epochs=1", "train.checkpoint_every=1000"]


def readme_commands() -> list[list[str]]:
    """The argument lists of the README's "The loop by hand" block, comments cut."""
    text = (REPO_ROOT / "README.md").read_text()
    block = text.split("### The loop by hand", 1)[1].split("```", 2)[1]
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith(".venv/bin/apo ")]


@pytest.mark.parametrize("settings", [[], ["policy.kind=paligemma-fast"]], ids=["apo-vla", "paligemma-fast"])
def test_the_readme_loop_by_hand_runs_as_written(settings, tmp_path):
    commands = readme_commands()
    assert [c[0] for c in commands] == ["collect", "train", "collect", "train", "evaluate", "publish", "publish"]
    flags = ["--workdir", str(tmp_path / ".apo")] + [f for s in SMALL + settings for f in ("--set", s)]
    for command in commands:
        result = subprocess.run([sys.executable, "-m", "flows.cli", *flags, *command], cwd=tmp_path,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"apo {shlex.join(command)}:\n{result.stderr}"
        assert "Traceback" not in result.stderr and "warning" not in result.stderr.lower(), result.stderr
    workdir = tmp_path / ".apo"
    assert len(EpisodeStore(workdir / "episodes" / "model-round0" / "button-press-topdown")) == 5
    record = (tmp_path / "models" / "round1" / "training.json").read_text()
    assert "model-round0" in record  # the update read the model's collection, by default
    rounds = subprocess.run([sys.executable, "-m", "flows.cli", *flags, "rounds"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert rounds.returncode == 0 and " 1       0  apo" in rounds.stdout, rounds.stdout


def test_an_update_without_corrections_says_what_it_read(tmp_path):
    """Demonstrations only: the update names the folder it read, what it held, and what to do."""
    flags = ["--workdir", str(tmp_path / ".apo"), "--set", "train.bc_steps=10"]
    run = [sys.executable, "-m", "flows.cli", *flags]
    for command in (["collect", "--task", "button-press-topdown", "--episodes", "2", "--policy", "expert"],
                    ["train", "--method", "bc", "--out", "models/round0"]):
        assert subprocess.run([*run, *command], cwd=tmp_path, capture_output=True, timeout=300).returncode == 0
    result = subprocess.run([*run, "train", "--method", "apo", "--from", "models/round0"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    line, = result.stderr.strip().splitlines()
    assert "episodes/expert/button-press-topdown (2 episodes)" in line and "0 of the human taking over" in line
    assert "apo collect --policy" in line
