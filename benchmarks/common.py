"""What the benchmarks share: their output, the worlds they play in, and the learning
benchmarks' seeds, episodes, scores and jobs.

Output (every benchmark):
    RESULTS              benchmarks/results/, where results are written (git-ignored)
    report               print a table and write it to RESULTS/<name>.json
    pyplot               matplotlib's pyplot, drawing to files only
    save_figure          lay a figure out and write it as a PNG

The learning benchmarks (learning.py, perturbation.py, bc_camera.py):
    METHODS              a method name of the benchmarks -> (train method, train overrides)
    seeded_parser        an argument parser with ``--seeds``
    seeded_config        the config of one benchmark seed
    world                the cached world of a task (and perturbation suite) in this process
    play, play_in        episodes played in memory, no store
    expert_demos         the scripted expert's demonstrations of round 0
    labelled             the training steps of some episodes
    score                gate metrics of a policy on the seeds of a split
    collection_figures   how much the human did in collected episodes
    job_pool, run_all    jobs in fresh processes, each resumed from its result on disk

The scripts are run as ``python benchmarks/<name>.py``, so each puts this folder on
``sys.path`` to import this module.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

# A method name of the benchmark -> (train method, train overrides)
METHODS = {
    "dagger": ("dagger", {}),
    "sirius": ("sirius", {}),
    "dpo": ("dpo", {}),
    "kto": ("kto", {}),
    "apo": ("apo", {"apo": {"weight_norm": "batch"}}),  # the paper's whole-batch weights
    "apo-subset": ("apo", {"apo": {"weight_norm": "subset"}}),  # the authors' code: per-subset weights
}


def report(name: str, columns: list[str], rows: list[list], extra: dict | None = None) -> Path:
    """Print ``rows`` as a table under ``columns`` and write them, with ``extra``, to RESULTS/<name>.json."""
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "rows": [dict(zip(columns, row)) for row in rows],
        **(extra or {}),
    }
    path.write_text(json.dumps(payload, indent=2))
    print(f"\nwritten {path}")
    return path


def pyplot():
    """matplotlib.pyplot on the Agg backend: the benchmarks write figures, they show none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path) -> Path:
    """Lay ``figure`` out and write it to ``path`` (PNG, 100 dpi)."""
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def seeded_parser(doc: str) -> argparse.ArgumentParser:
    """The argument parser of a benchmark run over seeds: described by the first line of
    ``doc``, with ``--seeds`` (default 0 1 2)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    return parser


def seeded_config(config_path: Path | None, seed: int, extra: dict | None = None, settings: dict | None = None):
    """The config of one benchmark seed: its own collection seeds and training seed."""
    from apo_core.config import load_config, with_overrides

    # One thread per job: two jobs with two torch threads each on two cores spin against
    # each other and run ~10x slower (measured).
    overrides = {"collect": {"seed": 1_000_000 * seed}, "train": {"seed": seed, "threads": 1}}
    config = load_config(config_path, overrides)
    for layer in (settings, extra):
        if layer:
            config = with_overrides(config, layer, "benchmark")
    return config


_WORLDS: dict = {}


def world(config, task: str, suite: str | None = None):
    """The world episodes of ``task`` are played in (``suite``: that perturbation suite's),
    built once per process; it renders every step only for an image policy (the expert and
    the human read no pixels, the recorded images train the policy)."""
    from apo_core.envs import make_env

    key = (task, suite, config.env.model_dump_json(), config.policy.use_image)
    if key not in _WORLDS:
        perturbation = config.perturbation(suite) if suite is not None else None
        _WORLDS[key] = make_env(task, config.env, perturbation, render=config.policy.use_image)
    return _WORLDS[key]


def play(config, task: str, actor, human, seeds: list[int], source: str):
    """Episodes in memory (no store): the benchmark measures learning, not storage."""
    env = world(config, task)
    return env, play_in(config, env, actor, human, seeds, source)


def play_in(config, env, actor, human, seeds: list[int], source: str) -> list:
    """Episodes played in ``env`` (perturbed or not), in memory, one per seed."""
    from apo_core.recording.collector import play_episode

    suite = env.perturbation.name if env.perturbation is not None else None
    episodes = []
    for seed in seeds:
        recorder = play_episode(env, actor, human, seed=seed, source=source)
        episode_id = f"{source}.{suite}.{seed}" if suite else f"{source}.{seed}"
        episodes.append(recorder.finish(episode_id=episode_id, episode_index=len(episodes), source=source,
                                        policy=actor.name, policy_round=None, robot_id="bench",
                                        takeover_reasons=list(getattr(human, "takeover_reasons", [])),
                                        perturbation=suite, fps=config.env.fps, gripper_dim=env.gripper_dim))
    return episodes


def expert_demos(config, task: str, count: int | None = None) -> list:
    """The scripted expert's demonstrations of ``task`` in the unperturbed world, on the
    seed's first ``count`` collection seeds (default ``collect.expert_demos_per_task``)."""
    from apo_core.human import ScriptedExpert

    count = config.collect.expert_demos_per_task if count is None else count
    demo_seeds = [config.collect.seed + i for i in range(count)]
    _, demos = play(config, task, ScriptedExpert(world(config, task)), None, demo_seeds, "expert")
    return demos


def labelled(config, episodes):
    """The labelled training steps of the ``episodes`` that show the task, dropped steps left out."""
    from apo_core.data.steps import Steps, demonstrates_task, episode_steps
    from apo_core.labels import Label

    kept = [e for e in episodes if demonstrates_task(e)]
    if not kept:  # e.g. every expert demonstration cut short by env.max_steps
        raise ValueError(f"none of {len(episodes)} episodes shows the task (a failed demonstration teaches "
                         f"nothing); env.max_steps is {config.env.max_steps}")
    steps = Steps.concat([episode_steps(e, config.labels) for e in kept])
    return steps.select(steps.labels != Label.DROPPED)


def score(config, policy, task: str, split: str, episodes: int | None = None,
          suites: list[str] | None = None) -> dict:
    """Gate metrics (apo_core.registry.gate.summarise) of ``policy`` on the seeds of ``split``
    (``suites``: in those perturbation suites' worlds; None: evaluate's default)."""
    from apo_core.evaluate import evaluate
    from apo_core.policy.actor import VlaActor
    from apo_core.registry.gate import summarise

    results = evaluate(config, lambda env: VlaActor(policy, env.instruction), tasks=[task], suites=suites,
                       split=split, episodes=episodes)
    return summarise([r.to_dict() for r in results])


def collection_figures(collected: list) -> dict:
    """How much the human had to do in the collected episodes, and how many succeeded."""
    return {"takeovers_per_episode": float(np.mean([e.meta.n_takeovers for e in collected])),
            "human_step_share": float(sum(e.is_intervention.sum() for e in collected)
                                      / sum(len(e) for e in collected)),
            "collection_success": float(np.mean([e.meta.success for e in collected]))}


def job_pool(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` worker processes, each a fresh interpreter: spawned, not forked, so no job
    inherits this process's worlds, GL contexts or torch threads."""
    return ProcessPoolExecutor(jobs, mp_context=get_context("spawn"))


def _cached(path: Path, job, *args):
    """Run ``job`` unless its result is already on disk (a re-run resumes the benchmark)."""
    if path.exists():
        return json.loads(path.read_text())
    result = job(*args)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return result


def run_all(pool, jobs) -> list:
    """The results of ``jobs``, each ``(result path, function, *arguments)``, run on ``pool``;
    a job whose result file exists is not run again, its result is read from the file."""
    futures = [pool.submit(_cached, *job) for job in jobs]
    return [future.result() for future in futures]
