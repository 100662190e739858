"""An update's cost as the rounds grow: wall time and peak memory of one round's update
with the default replay (``train.replay_episodes`` of earlier rounds) and with every
earlier round read (``replay_episodes: null``), on histories of up to 50 rounds.

    .venv/bin/python benchmarks/update_cost.py [--rounds 1 3 10 30 50] [--full-rounds 1 3 10] [--templates 4]

The history is the default camera config's: 20 interactions per task and round on its two
loop tasks, as copies (new ids and seeds) of a few recorded episodes in which random
actions make the simulated human take over, appended and versioned round by round as the
loop does (``version_round``). At each measured round the update (APO from a
behaviour-cloned round 0: ``apo_core.loop.update.train_round``, the dataset read and the
training) runs in a fresh process, which reports its wall time and peak RSS. A fifth of
an epoch keeps it short: an update's training is linear in ``train.epochs``, and what
grows with the rounds is the data it reads. The update with every earlier round is
measured on the first rounds only (``--full-rounds``): it grows with them. About 20
minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# Run as `python benchmarks/update_cost.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report  # noqa: E402

import flows  # noqa: E402,F401  (quiets lerobot's per-episode progress bars, as every entry point does)

WORK = RESULTS / "update-cost-work"
SETTINGS = {"paths": {"workdir": str(WORK)}, "train": {"epochs": 0.2, "threads": 1, "bc_steps": 200}}


def the_config(replay: int | None = 80):
    from apo_core.config import load_config, with_overrides

    return with_overrides(load_config(None, SETTINGS), {"train": {"replay_episodes": replay}}, "benchmark")


def templates(config, per_task: int) -> dict[str, list]:
    """A few recorded episodes per loop task in which the human takes over (random actions)."""
    from apo_core.actors import RandomActor
    from apo_core.envs import make_env
    from apo_core.human import ScriptedExpert, SimulatedHuman
    from apo_core.loop.layout import loop_tasks
    from apo_core.recording.collector import collect_episodes
    from apo_core.recording.store import EpisodeStore

    recorded = {}
    for task in loop_tasks(config):
        env = make_env(task, config.env)
        store = EpisodeStore.for_writing(WORK / "templates" / task)
        collect_episodes(env, RandomActor(env.action_dim), SimulatedHuman(ScriptedExpert(env), env, config.takeover),
                         store, collection="template", until=per_task, base_seed=0, source="interaction",
                         policy_round=0, robot_id="bench", fps=config.env.fps)
        recorded[task] = list(store)
    return recorded


def record_round(config, number: int, recorded: dict[str, list]) -> list[Path]:
    """Round N's interactions: each robot's share of every loop task, copies of the templates."""
    from apo_core.recording.store import EpisodeStore
    from apo_core.workdir import interaction_dir, round_name

    directories = []
    for task, episodes in recorded.items():
        for robot in config.collect.robots:
            store = EpisodeStore.for_writing(interaction_dir(config, number, task, robot))
            for index in range(config.collect.robot_share(robot)):
                episode = episodes[index % len(episodes)]
                meta = dataclasses.replace(
                    episode.meta, episode_id=f"{robot}.{round_name(number)}.{task}.e{index:06d}", episode_index=index,
                    seed=config.collect.round_seed(number, robot) + index, policy_round=number - 1, robot_id=robot)
                store.write(dataclasses.replace(episode, meta=meta))
            directories.append(store.directory)
    return directories


def measure(number: int, replay: int | None) -> dict:
    """In this fresh process: round N's update from round 0; wall time and peak RSS."""
    from apo_core.data.round_dataset import workspace_for
    from apo_core.loop import update
    from apo_core.workdir import model_dir, training_record_path

    config = the_config(replay)
    version = workspace_for(config).version(number)
    started = time.perf_counter()
    trained = update.train_round(config, number, "apo", model_dir(config, 0), version)
    seconds = time.perf_counter() - started
    read = json.loads(training_record_path(trained).read_text())
    shutil.rmtree(trained)
    return {"round": number, "replay": replay, "seconds": seconds, "rows": read["rows"],
            "episodes": read["episodes"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measured(number: int, replay: int | None) -> dict:
    """:func:`measure` in a fresh process (its peak memory is the update's alone)."""
    result = subprocess.run([sys.executable, __file__, "--measure", str(number), "--replay", str(replay)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def build_and_measure(args) -> list[dict]:
    from apo_core.data.round_dataset import version_round
    from apo_core.loop import update
    from apo_core.loop.layout import loop_tasks
    from apo_core.loop.robots import record_demonstrations
    from apo_core.workdir import dataset_sources

    shutil.rmtree(WORK, ignore_errors=True)
    config = the_config()
    for task in loop_tasks(config):
        record_demonstrations(config, task)
    version, _, _ = version_round(config, 0, dataset_sources(config, 0, loop_tasks(config)))
    update.train_round(config, 0, "bc", None, version)
    recorded = templates(config, args.templates)
    results = []
    for number in range(1, max(args.rounds) + 1):
        version_round(config, number, record_round(config, number, recorded))  # only the new episodes to read
        for replay in [80] * (number in args.rounds) + [None] * (number in args.full_rounds):
            results.append(measured(number, replay))
            print(f"round {number} replay {replay}: {results[-1]['seconds']:.0f}s, "
                  f"{results[-1]['peak_rss_mb']:.0f} MB, {results[-1]['episodes']} episodes", flush=True)
    return results


def in_turn(first: int, last: int, pairs: int) -> list[dict]:
    """The bounded update of round ``first`` and of round ``last`` measured in turn, ``pairs``
    times each, on the history already built (each round's dataset checked out first): the
    machine's drift falls on both alike."""
    from apo_core.data.restore import checkout_round
    from apo_core.data.round_dataset import workspace_for

    results = []
    for pair in range(pairs):
        for number in (first, last) if pair % 2 == 0 else (last, first):
            checkout_round(workspace_for(the_config()), number)
            results.append(measured(number, 80))
            print(f"in turn: round {number}: {results[-1]['seconds']:.0f}s, {results[-1]['peak_rss_mb']:.0f} MB",
                  flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, nargs="+", default=[1, 3, 10, 30, 50])
    parser.add_argument("--full-rounds", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--templates", type=int, default=4, help="recorded episodes per task, copied")
    parser.add_argument("--in-turn", type=int, default=2, metavar="PAIRS",
                        help="then measure the first round with a full replay and the last in turn, PAIRS times")
    parser.add_argument("--reuse", action="store_true", help="measure in turn on the history already built")
    parser.add_argument("--measure", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--replay", default="80", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, None if args.replay == "None" else int(args.replay))))
        return
    results = [] if args.reuse else build_and_measure(args)
    first, last = next(r for r in args.rounds if r >= 3), max(args.rounds)  # the replay is full from round 3 on
    paired = in_turn(first, last, args.in_turn)
    rows = [[r["round"], "all earlier" if r["replay"] is None else r["replay"], r["episodes"], r["rows"],
             round(r["seconds"], 1), round(r["peak_rss_mb"])] for r in results]
    rows += [[f"{r['round']} (in turn)", 80, r["episodes"], r["rows"], round(r["seconds"], 1),
              round(r["peak_rss_mb"])] for r in paired]
    mean = {number: {key: float(np.mean([r[key] for r in paired if r["round"] == number]))
                     for key in ("seconds", "peak_rss_mb")} for number in (first, last)}
    ratios = {"seconds": mean[last]["seconds"] / mean[first]["seconds"],
              "peak_rss": mean[last]["peak_rss_mb"] / mean[first]["peak_rss_mb"]}
    rows.append([f"round {last} / round {first}, in turn", 80, "", "", round(ratios["seconds"], 2),
                 round(ratios["peak_rss"], 2)])
    report("update_cost", ["round", "replay", "episodes read", "steps", "update s", "peak RSS MB"], rows,
           {"results": results, "in_turn": paired, "ratios": ratios,
            "goal": f"round {last} <= 1.2x round {first} (the first with a full replay)", "settings": SETTINGS})


if __name__ == "__main__":
    main()
