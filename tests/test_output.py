"""What a person sees: progress while long steps run (under a real pseudo-terminal), and a
demo whose output holds no warning, traceback or logging error."""

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from tasks.progress import ProgressFile, RemoteProgress

pytestmark = pytest.mark.slow  # the demo and training as a user sees them on a terminal


def run_in_terminal(*args: str, timeout: float = 300) -> str:
    """Run `apo ARGS` with stdout and stderr on a pseudo-terminal; everything it printed."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a 120-column terminal
    process = subprocess.Popen([sys.executable, "-m", "flows.cli", *args], stdin=terminal, stdout=terminal,
                               stderr=terminal, close_fds=True)
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=timeout)
    os.close(controller)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode(errors="replace")


def test_training_and_evaluation_show_progress_on_a_terminal(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("env: {tasks: [push], max_steps: 100}\ntrain: {bc_batch_size: 8, threads: 1}\n")
    base = ["--config", str(config), "--workdir", str(tmp_path / "work")]
    run_in_terminal(*base, "collect", "--task", "push", "--episodes", "2", "--policy", "expert")
    trained = run_in_terminal(*base, "train", "--method", "bc", "--steps", "30", "--out", str(tmp_path / "m"))
    assert "train bc" in trained and "30/30" in trained and "loss=" in trained
    evaluated = run_in_terminal(*base, "evaluate", "--model", str(tmp_path / "m"), "--episodes", "3")
    assert "evaluate (validation seeds)" in evaluated and "3/3" in evaluated and "success=" in evaluated


def test_the_demo_prints_no_warning_traceback_or_logging_error(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text("""
env: {max_steps: 100}
collect: {interactions_per_round: 2, expert_demos_per_task: 2}
evaluation: {episodes: 4, perturbed_episodes: 2}
train: {bc_steps: 20, epochs: 1, bc_batch_size: 8, threads: 1}
""")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    result = subprocess.run([sys.executable, "-m", "flows.cli", "--config", str(config), "--workdir",
                             str(tmp_path / "work"), "demo", "--rounds", "1"],
                            capture_output=True, text=True, timeout=900, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "paired gain vs round 0" in output
    for noise in ("Warning", "WARNING", "Traceback", "Logging error"):
        assert noise not in output, output


def test_a_step_on_another_process_shows_its_progress_and_notices_here(tmp_path, capsys):
    """A Ray worker's output is not forwarded: the training it runs keeps its progress in a
    file, and the driver shows it (one line per tenth off a terminal) with its notices."""
    path = tmp_path / "train.progress.json"
    shown = RemoteProgress("round 1: train apo", path, "steps")
    shown.poll()  # nothing written yet: nothing shown
    written = ProgressFile(path, every=0.0)
    written.note("resuming from the checkpoint at step 4")
    for step in range(4, 11):
        written.update(step, 10, loss=f"{1 / step:.4f}")
        shown.poll()
    shown.close()
    printed = capsys.readouterr()
    assert "round 1: train apo: resuming from the checkpoint at step 4" in printed.err
    assert "round 1: train apo: 10/10 steps, loss 0.1000" in printed.out
    assert printed.out.count("10/10 steps") == 1
