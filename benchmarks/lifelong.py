"""The lifelong benchmark: does the loop keep improving round after round, on several tasks
at once, with fewer takeovers and without forgetting, at an update cost that stays flat?

    .venv/bin/python benchmarks/lifelong.py [--seeds 0 1] [--dagger-seeds 0] [--rounds 8]
        [--tasks button-press-topdown drawer-open ...] [--test-episodes 50] [--jobs 3] [--name lifelong]

For each seed (its demonstrations, collections and training seed), round 0 is one camera
policy behaviour-cloned on every task's demonstrations (the instruction selects the task).
Then each round runs the loop as `apo run` does, without the stores: the champion collects
``collect.interactions_per_round`` episodes per task with the simulated human watching; the
update (APO, or DAgger on the same data and budget) reads the round's episodes, the
demonstrations and ``train.replay_episodes`` earlier ones, chosen as the loop chooses
(apo_core/data/replay.py); the candidate faces the loop's gate on VALIDATION seeds (pooled
and per task, apo_core/registry/gate.py); champion and candidate are scored per task on
``--test-episodes`` TEST seeds, which choose nothing. The perturbation suites are left out
(``evaluation.perturbations: []``): this measures learning over rounds.

Per method and round (mean over seeds): the champion's test success per task, takeovers per
collected episode, the human's share of steps, the update's seconds, its peak memory (the
job process's resident high-water mark) and the steps it read. Per task, LIBERO's lifelong
metrics on the champion's test success s_0..s_R: AUC = mean of s_0..s_R; backward transfer
(BWT) = the largest drop below the best champion so far, max_r (max_{q<=r} s_q - s_r), 0 when
nothing is forgotten; forward transfer (FWT) = the mean gain of a round's candidate over the
champion it was trained from. Writes benchmarks/results/<name>.json and .png; jobs run
``--jobs`` at a time in fresh processes, a re-run reusing finished ones.

Sized to fit two hours alone, by estimate from learning.py's camera timings here (per task
and round: collection ~40 s, update ~45 s, 150 evaluation episodes ~100 s): ~9 min a round
on four tasks, 8 rounds ~75 min a job; the three jobs (APO on 2 seeds, DAgger on 1) at
once on 2 cores ~110-120 min. A first full run confirms or corrects this; fewer rounds or
test seeds are the levers.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

# Run as `python benchmarks/lifelong.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    METHODS,
    RESULTS,
    collection_figures,
    expert_demos,
    job_pool,
    labelled,
    play,
    pyplot,
    report,
    run_all,
    save_figure,
    seeded_config,
    seeded_parser,
    world,
)

SETTINGS = {"evaluation": {"episodes": 50, "perturbations": []}}


def named(episodes: list, collection: str, task: str) -> list:
    """Episodes with the loop's ids, ``bench.<collection>.<task>.e<i>`` (the replay reads the task from them)."""
    return [replace(e, meta=replace(e.meta, episode_id=f"bench.{collection}.{task}.e{i:06d}"))
            for i, e in enumerate(episodes)]


def lineage_entry(config, episode, number: int) -> dict:
    """What the loop's lineage record says of an episode: its round, source and label counts."""
    from apo_core.data.lineage import label_name

    labels = Counter(label_name(int(c), episode.meta.source) for c in labelled(config, [episode]).labels)
    return {"episode_id": episode.meta.episode_id, "round": number, "source": episode.meta.source,
            "labels": dict(labels)}


def scored(config, policy, tasks: list[str], split: str, episodes: int | None = None) -> dict:
    """Gate metrics (pooled, per task and per seed) of ``policy`` on every task."""
    from apo_core.evaluate import evaluate
    from apo_core.policy.actor import VlaActor
    from apo_core.registry.gate import summarise

    results = evaluate(config, lambda env: VlaActor(policy, env.instruction), tasks=tasks, split=split,
                       episodes=episodes)
    return summarise([r.to_dict() for r in results])


def base_job(settings: dict, seed: int, tasks: list[str], work: Path, test_episodes: int) -> dict:
    """Round 0 of one seed: every task's demonstrations, one behaviour-cloned policy."""
    import torch

    from apo_core.loop.update import train_policy

    config = seeded_config(None, seed, settings=settings)
    torch.set_num_threads(1)
    demos = [e for task in tasks for e in named(expert_demos(config, task), "expert", task)]
    policy = train_policy(config, labelled(config, demos), "bc", work / f"seed-{seed}" / "bc.work")
    policy.save_pretrained(work / f"seed-{seed}" / "round-0000")
    test = scored(config, policy, tasks, "test", test_episodes)
    print(f"seed {seed}: round 0 test {test['success_rate']:.0%} {test['tasks']}", flush=True)
    return {"seed": seed, "tasks": tasks, "test": test, "validation": scored(config, policy, tasks, "validation")}


def collect(config, champion, tasks: list[str], number: int) -> list:
    """The champion's round of interactions on every task, the simulated human watching."""
    from apo_core.human import ScriptedExpert, SimulatedHuman
    from apo_core.policy.actor import VlaActor

    collected = []
    for task in tasks:
        seeds = [config.collect.seed + 100_000 * number + i for i in range(config.collect.interactions_per_round)]
        env = world(config, task)
        human = SimulatedHuman(ScriptedExpert(env), env, config.takeover)
        _, episodes = play(config, task, VlaActor(champion, env.instruction), human, seeds, "interaction")
        collected += named(episodes, f"round-{number:04d}", task)
    return collected


def update(config, method: str, champion, history: list[dict], by_id: dict, number: int, work: Path):
    """The round's update on what the loop would read; the candidate, seconds, peak MB and rows."""
    from apo_core.data.replay import update_episodes
    from apo_core.loop.update import train_policy

    chosen = update_episodes(history, number, config.train.replay_episodes, config.train.seed)
    steps = labelled(config, [by_id[i] for group in chosen.values() for i in group])
    start = time.perf_counter()
    candidate = train_policy(config, steps, method, work, reference=champion)
    seconds = time.perf_counter() - start
    return candidate, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(steps)


def method_job(settings: dict, seed: int, name: str, rounds: int, work: Path, test_episodes: int) -> dict:
    """``rounds`` rounds of the loop with one method, from the seed's round 0."""
    import torch

    from apo_core.policy import load_policy
    from apo_core.registry.gate import promotion_decision

    method, overrides = METHODS[name]
    config = seeded_config(None, seed, {"train": overrides}, settings)
    torch.set_num_threads(1)
    base = json.loads((work / f"seed-{seed}" / "base.json").read_text())
    tasks = base["tasks"]
    demos = [e for task in tasks for e in named(expert_demos(config, task), "expert", task)]
    by_id = {e.meta.episode_id: e for e in demos}
    history = [lineage_entry(config, e, 0) for e in demos]
    champion_dir, champion_val, champion_test = work / f"seed-{seed}" / "round-0000", base["validation"], base["test"]
    rows = []
    for number in range(1, rounds + 1):
        champion = load_policy(champion_dir)
        collected = collect(config, champion, tasks, number)
        by_id.update((e.meta.episode_id, e) for e in collected)
        history += [lineage_entry(config, e, number) for e in collected]
        candidate, seconds, peak_mb, read = update(config, method, load_policy(champion_dir), history, by_id, number,
                                                   work / f"seed-{seed}" / f"{name}.work")
        validation = scored(config, candidate, tasks, "validation")
        test = scored(config, candidate, tasks, "test", test_episodes)
        promoted, reason = promotion_decision(validation, champion_val, rule=config.registry.promote_rule,
                                              margin=config.registry.promote_margin,
                                              max_suite_regression=config.registry.max_suite_regression)
        if promoted:
            champion_dir = work / f"seed-{seed}" / f"{name}-round-{number:04d}"
            candidate.save_pretrained(champion_dir)
            champion_val, champion_test = validation, test
        rows.append({"round": number, "promoted": promoted, "reason": reason, **collection_figures(collected),
                     "candidate_tasks": test["tasks"], "champion_tasks": champion_test["tasks"],
                     "champion_test": champion_test["success_rate"], "update_seconds": seconds,
                     "peak_rss_mb": peak_mb, "steps_read": read})
        print(f"seed {seed} {name} round {number}: champion {champion_test['success_rate']:.0%} "
              f"{champion_test['tasks']}, {'promoted' if promoted else 'kept'}; takeovers/ep "
              f"{rows[-1]['takeovers_per_episode']:.2f}; update {seconds:.0f}s {peak_mb:.0f} MB", flush=True)
    return {"seed": seed, "method": name, "rounds": rows}


def lifelong_metrics(curve: list[float], candidates: list[float]) -> dict:
    """LIBERO's metrics of one task: AUC of the champion's curve s_0..s_R, backward transfer
    (the largest drop below the best so far) and forward transfer (the mean gain of each
    round's candidate over the champion it was trained from)."""
    best = np.maximum.accumulate(curve)
    return {"auc": float(np.mean(curve)), "bwt": float(np.max(best - curve)),
            "fwt": float(np.mean(np.array(candidates) - np.array(curve[:-1])))}


def summary(bases: list[dict], runs: list[dict], rounds: int) -> tuple[list[list], dict]:
    """Rows per method and round (means over seeds), and the lifelong metrics per method and task."""
    tasks = bases[0]["tasks"]
    base_of = {b["seed"]: b for b in bases}
    rows = [["base (BC)", 0, len(bases), f"{np.mean([b['test']['success_rate'] for b in bases]):.0%}",
             *(f"{np.mean([b['test']['tasks'][t] for b in bases]):.0%}" for t in tasks), "-", "-", "-", "-", "-"]]
    metrics: dict = {}
    for name in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == name]
        for number in range(1, rounds + 1):
            entries = [r["rounds"][number - 1] for r in mine]
            rows.append([name, number, len(entries), f"{np.mean([e['champion_test'] for e in entries]):.0%}",
                         *(f"{np.mean([e['champion_tasks'][t] for e in entries]):.0%}" for t in tasks),
                         f"{np.mean([e['takeovers_per_episode'] for e in entries]):.2f}",
                         f"{np.mean([e['human_step_share'] for e in entries]):.0%}",
                         round(float(np.mean([e["update_seconds"] for e in entries])), 1),
                         round(float(np.mean([e["peak_rss_mb"] for e in entries]))),
                         int(np.mean([e["steps_read"] for e in entries]))])
        metrics[name] = {task: {key: float(np.mean([lifelong_metrics(
            [base_of[r["seed"]]["test"]["tasks"][task], *(e["champion_tasks"][task] for e in r["rounds"])],
            [e["candidate_tasks"][task] for e in r["rounds"]])[key] for r in mine])) for key in ("auc", "bwt", "fwt")}
            for task in tasks}
        first, last = [np.mean([r["rounds"][i]["takeovers_per_episode"] for r in mine]) for i in (0, rounds - 1)]
        metrics[name]["takeovers_change"] = float(last / first - 1) if first else None
    return rows, metrics


def plot(bases: list[dict], runs: list[dict], rounds: int, path: Path) -> Path:
    """Champion test success per task and round (one panel per method), and takeovers per round."""
    tasks = bases[0]["tasks"]
    methods = list(dict.fromkeys(r["method"] for r in runs))
    figure, axes = pyplot().subplots(1, len(methods) + 1, figsize=(5 * (len(methods) + 1), 4))
    base_of = {b["seed"]: b for b in bases}
    for axis, name in zip(axes, methods):
        mine = [r for r in runs if r["method"] == name]
        for task in tasks:
            curve = np.mean([[base_of[r["seed"]]["test"]["tasks"][task], *(e["champion_tasks"][task]
                                                                          for e in r["rounds"])] for r in mine], axis=0)
            axis.plot(range(rounds + 1), curve, marker="o", label=task)
        axis.set(title=f"{name}: champion test success per task", xlabel="round", ylim=(0, 1),
                 xticks=range(rounds + 1))
        axis.legend(fontsize=7)
        takeovers = np.mean([[e["takeovers_per_episode"] for e in r["rounds"]] for r in mine], axis=0)
        axes[-1].plot(range(1, rounds + 1), takeovers, marker="s", label=name)
    axes[-1].set(title="takeovers per collected episode", xlabel="round", xticks=range(1, rounds + 1))
    axes[-1].legend(fontsize=7)
    return save_figure(figure, path)


def main() -> None:
    from apo_core.config import parse_assignments

    parser = seeded_parser(__doc__)
    parser.set_defaults(seeds=[0, 1])
    parser.add_argument("--dagger-seeds", type=int, nargs="*", default=[0], help="seeds DAgger also runs on")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--tasks", nargs="+", default=None, help="default: the first four of env.tasks")
    parser.add_argument("--test-episodes", type=int, default=50, help="test seeds per task")
    parser.add_argument("--jobs", type=int, default=3, help="processes at once")
    parser.add_argument("--name", default="lifelong")
    parser.add_argument("--set", dest="settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every job (over the benchmark's: 50 validation seeds per task, "
                             "no perturbation suites)")
    args = parser.parse_args()
    from apo_core.config.loading import deep_merge

    settings = deep_merge(SETTINGS, parse_assignments(args.settings))
    tasks = args.tasks or seeded_config(None, 0, settings=settings).env.tasks[:4]
    work = RESULTS / f"{args.name}-work"
    started = time.perf_counter()
    with job_pool(args.jobs) as pool:
        bases = run_all(pool, [(work / f"seed-{s}" / "base.json", base_job, settings, s, tasks, work,
                                args.test_episodes) for s in args.seeds])
        jobs = [("apo", s) for s in args.seeds] + [("dagger", s) for s in args.dagger_seeds]
        runs = run_all(pool, [(work / f"seed-{s}" / f"{m}.json", method_job, settings, s, m, args.rounds, work,
                               args.test_episodes) for m, s in jobs])
    wall = time.perf_counter() - started
    rows, metrics = summary(bases, runs, args.rounds)
    report(args.name, ["method", "round", "seeds", "champion test", *tasks, "takeovers/ep", "human share",
                       "update s", "peak MB", "steps read"], rows,
           {"seeds": args.seeds, "dagger_seeds": args.dagger_seeds, "rounds": args.rounds, "tasks": tasks,
            "test_episodes": args.test_episodes, "wall_seconds": wall, "settings": settings,
            "lifelong_metrics": metrics, "bases": bases, "runs": runs})
    print(json.dumps(metrics, indent=2))
    print(f"plot: {plot(bases, runs, args.rounds, RESULTS / f'{args.name}.png')}; wall time {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
