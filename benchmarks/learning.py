"""Does APO help? BC base success per task, then one round of takeover data and every method on it.

    .venv/bin/python benchmarks/learning.py [--base-tasks push pick-place ...] [--task push]
        [--demos 20] [--bc-steps 2000] [--interactions 20] [--update-steps 300]
        [--eval-episodes 20] [--lr 5e-5] [--name learning]

A documented run of ~25 minutes on 2 cores (not part of `make test`):
1. for each of ``--base-tasks`` (default: every task of env.tasks), the scripted expert
   records ``--demos`` demonstrations and BC trains a round-0 policy (timed), evaluated
   on the same seeded episodes as every other row;
2. the round 0 of ``--task`` is deployed for ``--interactions`` episodes with the
   simulated human watching;
3. from that round 0 and on the same data, each of dagger / dpo / kto / apo trains round 1;
4. every round 1 is evaluated on the base's seeded episodes (Wilson 95% CI).
It reports the truth, whichever method wins.
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS, report  # noqa: E402

from apo_core.collect import collect_episodes  # noqa: E402
from apo_core.config import load_config  # noqa: E402
from apo_core.data.steps import load_steps  # noqa: E402
from apo_core.envs import make_env  # noqa: E402
from apo_core.episodes import EpisodeStore  # noqa: E402
from apo_core.evaluate import evaluate  # noqa: E402
from apo_core.human import ScriptedExpert, SimulatedHuman  # noqa: E402
from apo_core.labels import label_counts  # noqa: E402
from apo_core.loop import train_policy  # noqa: E402
from apo_core.policy import ApoVlaPolicy  # noqa: E402
from apo_core.policy.actor import VlaActor  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-tasks", nargs="+", default=None, help="default: env.tasks of the config")
    parser.add_argument("--task", default="push", help="the task of the preference round")
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--bc-steps", type=int, default=2000)
    parser.add_argument("--interactions", type=int, default=20)
    parser.add_argument("--update-steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=None, help="preference lr (default: config train.lr)")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=["dagger", "dpo", "kto", "apo"])
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--name", default="learning", help="results file benchmarks/results/<name>.json")
    args = parser.parse_args()

    work = RESULTS / f"{args.name}-work"
    shutil.rmtree(work, ignore_errors=True)
    train_overrides = {"bc_steps": args.bc_steps, "update_steps": args.update_steps}
    if args.lr is not None:
        train_overrides["lr"] = args.lr
    config = load_config(args.config, {"paths": {"workdir": str(work)}, "train": train_overrides})
    torch.set_num_threads(config.train.threads)
    common = dict(robot_id="bench", fps=config.env.fps)
    rows, details = [], {}

    def add(name, policy, task, train_seconds):
        """Evaluate ``policy`` on the shared seeded episodes of ``task`` and add its row."""
        start = time.perf_counter()
        result = evaluate(config, lambda e: VlaActor(policy, e.instruction), tasks=[task],
                          episodes=args.eval_episodes)[0]
        eval_seconds = time.perf_counter() - start
        low, high = result.interval
        rows.append([name, task, f"{result.success_rate:.0%}", f"[{low:.2f}, {high:.2f}]",
                     round(result.mean_length, 1), round(train_seconds, 1), round(eval_seconds, 1)])
        details[f"{name} / {task}"] = {**result.to_dict(), "train_seconds": train_seconds,
                                       "eval_seconds": eval_seconds}
        print(f"{name} on {result.task}: {result.success_rate:.0%} [{low:.2f}, {high:.2f}]", flush=True)

    def behaviour_cloned(task):
        """Record the expert's demos of ``task``, BC-train a round 0 on them, save and score it."""
        env = make_env(task, config.env)
        demos = EpisodeStore.for_writing(work / "episodes" / "expert" / task)
        collect_episodes(env, ScriptedExpert(env), None, demos, collection="expert", until=args.demos,
                         base_seed=config.collect.seed, source="expert", policy_round=None, **common)
        demo_steps = load_steps([demos.directory], config.labels)
        start = time.perf_counter()
        policy = train_policy(config, demo_steps, "bc", work / f"bc-{task}.work")
        add("base (BC)", policy, task, time.perf_counter() - start)
        policy.save_pretrained(work / "models" / task / "round-0000")
        return policy, demos

    base_tasks = dict.fromkeys([*(args.base_tasks or config.env.tasks), args.task])  # ordered, no repeats
    bases = {task: behaviour_cloned(task) for task in base_tasks}
    base, demos = bases[args.task]
    base_dir = work / "models" / args.task / "round-0000"
    env = make_env(args.task, config.env)
    expert = ScriptedExpert(env)

    interactions = EpisodeStore.for_writing(work / "episodes" / "round-0001" / args.task)
    human = SimulatedHuman(expert, env, config.takeover)
    collected = collect_episodes(env, VlaActor(base, env.instruction), human, interactions, collection="round-0001",
                                 until=args.interactions,
                                 base_seed=config.collect.seed + 100_000, source="interaction", policy_round=0,
                                 **common)
    round_steps = load_steps([demos.directory, interactions.directory], config.labels)

    for method in args.methods:
        start = time.perf_counter()
        updated = train_policy(config, round_steps, method, work / f"{method}.work",
                               reference=ApoVlaPolicy.from_pretrained(base_dir))
        add(method, updated, args.task, time.perf_counter() - start)

    report(
        args.name,
        ["policy", "task", "success", "95% CI", "mean length", "train s", "eval s"],
        rows,
        {
            "base_tasks": list(bases),
            "task": args.task,
            "demos": args.demos,
            "bc_steps": args.bc_steps,
            "update_steps": args.update_steps,
            "eval_episodes": args.eval_episodes,
            "train_config": config.train.model_dump(mode="json"),
            "policy_config": config.policy.model_dump(mode="json"),
            "round0_collection": {
                "episodes": collected.episodes,
                "success_rate": collected.success_rate,
                "takeovers_per_episode": collected.takeovers_per_episode,
                "human_step_share": collected.human_step_share,
                "label_counts": label_counts(round_steps.labels),
            },
            "results": details,
        },
    )


if __name__ == "__main__":
    main()
