"""The real CLI against a workdir as a user has it, for the fault suites (tests/test_faults.py,
tests/test_integrity.py): running `apo`, checking its one-line errors, digests of trees."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

SECRET = "do-not-print-this-secret-0123456789"


def apo(*args, env=None, timeout=300, preexec_fn=None):
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, preexec_fn=preexec_fn)


def train_bc(store, *data: Path, out: Path):
    """`apo train --method bc` for two steps on ``data``."""
    return apo(*store["base"], "train", "--method", "bc", "--steps", "2", "--data", *map(str, data), "--out", str(out))


def dataset_state(workspace: Path) -> tuple:
    """What a dataset version is: the data, its .dvc pointer, the lineage, the git history and tags
    (not git's index or DVC's own state files, which every command touches)."""
    git = lambda *a: subprocess.run(["git", *a], cwd=workspace, capture_output=True, text=True).stdout  # noqa: E731
    return (tree_digest(workspace / "datasets"), (workspace / "datasets.dvc").read_text(),
            tree_digest(workspace / "lineage"), git("rev-parse", "HEAD"), git("tag", "--list"))


def one_line(result, *expected: str) -> str:
    """The run failed with exit code 2 and exactly one line naming ``expected``."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    assert len(lines) == 1, result.stderr[-1500:]
    assert "Traceback" not in result.stderr + result.stdout and SECRET not in result.stderr + result.stdout
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def tree_digest(root: Path) -> str:
    """One digest of every file under ``root`` (names and bytes): 'unchanged' made checkable."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def published_workdir(small_round_dirs, root: Path) -> dict:
    """A workdir as a user has it: demos, a round of interactions, round 0 and 1 trained,
    datasets 0 and 1 versioned, both rounds published, round 1 champion."""
    config = root / "config.yaml"
    config.write_text(f"env: {{tasks: [push], max_steps: 60}}\n"
                      f"collect: {{robots: [r0, r1, r2, r3]}}\n"
                      f"train: {{bc_batch_size: 8, batch_size: 8, threads: 1, checkpoint_every: 2}}\n"
                      f"paths: {{workdir: '{root / 'work'}'}}\n")
    work = root / "work"
    shutil.copytree(small_round_dirs[0], work / "episodes" / "expert" / "push")
    shutil.copytree(small_round_dirs[1], work / "episodes" / "round-0001" / "push" / "r0")
    base = ["--config", str(config)]
    models = root / "models"
    for command in (["train", "--method", "bc", "--steps", "4", "--out", str(models / "r0")],
                    ["dataset", "build", "0", "--data", str(work / "episodes" / "expert" / "push")],
                    ["dataset", "build", "1"],
                    ["train", "--method", "dagger", "--from", str(models / "r0"), "--epochs", "0.05",
                     "--out", str(models / "r1")],
                    ["publish", "0", "--model", str(models / "r0"), "--method", "bc"],
                    ["publish", "1", "--model", str(models / "r1"), "--method", "dagger", "--parent", "0"],
                    ["rollback", "1", "--reason", "set up"]):
        result = apo(*base, *command)
        assert result.returncode == 0, (command, result.stderr[-2000:])
    return {"config": config, "base": base, "work": work, "models": models, "root": root,
            "registry": work / "model-store", "episodes": work / "episodes"}
