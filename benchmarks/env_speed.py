"""Env steps/s without and with 64 px rendering, and scripted-expert success per task.

    .venv/bin/python benchmarks/env_speed.py [--episodes 20]

Expected here (2 cores): several hundred steps/s without rendering, ~50-80 with it;
experts >= 85% on every default task.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# Run as `python benchmarks/env_speed.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

from apo_core.config import load_config  # noqa: E402
from apo_core.envs import make_env  # noqa: E402
from apo_core.human import ScriptedExpert  # noqa: E402


def physics_steps_per_second(env, steps: int) -> float:
    """Raw MuJoCo stepping of the MetaWorld env, no rendering."""
    env.reset(0)  # outside the clock: a reset renders an image, and only the physics is timed
    start = time.perf_counter()
    for _ in range(steps):
        env.step_physics(np.zeros(4, np.float32))
    return steps / (time.perf_counter() - start)


def rendered_steps_per_second(env, steps: int) -> float:
    env.reset(0)
    start = time.perf_counter()
    for i in range(steps):
        if env.step(np.zeros(4, np.float32)).truncated:
            env.reset(i)
    return steps / (time.perf_counter() - start)


def expert_success(env, episodes: int) -> tuple[float, float]:
    expert = ScriptedExpert(env)
    successes, lengths = 0, []
    for seed in range(episodes):
        observation = env.reset(seed)
        for step in range(env.max_steps):
            outcome = env.step(expert.act(observation))
            observation = outcome.observation
            if outcome.success or outcome.truncated:
                break
        successes += outcome.success
        lengths.append(step + 1)
    return successes / episodes, float(np.mean(lengths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--steps", type=int, default=1000)
    args = parser.parse_args()
    config = load_config()
    rows = []
    for task in config.env.tasks:
        env = make_env(task, config.env)
        physics = physics_steps_per_second(env, args.steps)
        rendered = rendered_steps_per_second(env, args.steps // 4)
        success, length = expert_success(env, args.episodes)
        rows.append([task, round(physics), round(rendered, 1), f"{success:.0%}", round(length, 1)])
    report(
        "env_speed",
        ["task", "steps/s (no render)", f"steps/s ({config.env.image_size}px)", "expert success", "mean length"],
        rows,
        {"episodes_per_task": args.episodes, "max_steps": config.env.max_steps},
    )


if __name__ == "__main__":
    main()
