"""The lifelong benchmark: does the loop learn, and which update learns best?

    .venv/bin/python benchmarks/learning.py [--seeds 0 1 2] [--rounds 3]
        [--methods dagger sirius dpo kto apo apo-subset] [--test-episodes 100]
        [--jobs 2] [--config my.yaml] [--name learning]

For every seed (which changes the demonstrations' and collections' seeds AND the training
seed), round 0 is behaviour-cloned from the expert demos of the loop's task. Then, for
every method, the loop runs ``--rounds`` rounds exactly as `apo run` does, without the
stores: the champion collects ``collect.interactions_per_round`` episodes with the
simulated human watching, the data of every round so far is aggregated with the demos,
the method updates the champion (its reference), the candidate is evaluated on the
VALIDATION seeds and the paired promote gate decides. Every candidate and every champion
is then scored on ``--test-episodes`` TEST seeds, which are never used to choose anything.

Prints per method and round: the champion's test success (mean ± sd over seeds), its
paired difference to round 0 (mean, and on how many seeds the 95% interval excludes 0),
takeovers per collected episode, and train / eval seconds. Writes
benchmarks/results/<name>.json and <name>.png. Jobs (one per seed, then one per method ×
seed, method by method) run ``--jobs`` at a time in fresh processes; a re-run reuses
finished jobs from benchmarks/results/<name>-work/ (delete it to start over);
``--report-only`` reports the finished jobs without running any.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

# Run as `python benchmarks/learning.py`: this folder on the path lets it import its sibling `common`.
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
    score,
    seeded_config,
    seeded_parser,
    world,
)


def base_job(config_path: Path | None, settings: dict, seed: int, work: Path, test_episodes: int) -> dict:
    """Round 0 of one seed: expert demos, behaviour cloning, scored on the test seeds."""
    import torch

    from apo_core.loop.update import train_policy

    config = seeded_config(config_path, seed, settings=settings)
    torch.set_num_threads(1)
    task = config.env.tasks[0]
    demos = expert_demos(config, task)
    start = time.perf_counter()
    policy = train_policy(config, labelled(config, demos), "bc", work / f"seed-{seed}" / "bc.work")
    train_seconds = time.perf_counter() - start
    policy.save_pretrained(work / f"seed-{seed}" / "round-0000")
    start = time.perf_counter()
    test = score(config, policy, task, "test", test_episodes)
    result = {"seed": seed, "task": task, "train_seconds": train_seconds,
              "eval_seconds": time.perf_counter() - start, "test": test,
              "validation": score(config, policy, task, "validation")}
    print(f"seed {seed}: round 0 (BC) test success {test['success_rate']:.0%}", flush=True)
    return result


def method_job(config_path: Path | None, settings: dict, seed: int, name: str, rounds: int, work: Path,
               test_episodes: int) -> dict:
    """``rounds`` rounds of the loop with one method, from the seed's round 0."""
    import torch

    from apo_core.human import ScriptedExpert, SimulatedHuman
    from apo_core.labels import Label
    from apo_core.loop.update import train_policy
    from apo_core.policy import load_policy
    from apo_core.policy.actor import VlaActor
    from apo_core.registry.gate import paired_gain, promotion_decision

    method, overrides = METHODS[name]
    config = seeded_config(config_path, seed, {"train": overrides}, settings)
    torch.set_num_threads(1)
    base = json.loads((work / f"seed-{seed}" / "base.json").read_text())
    task = base["task"]
    env = world(config, task)
    episodes = expert_demos(config, task)
    champion_dir, champion_val, champion_test = work / f"seed-{seed}" / "round-0000", base["validation"], base["test"]
    history = []
    for number in range(1, rounds + 1):
        champion = load_policy(champion_dir)
        start = time.perf_counter()
        human = SimulatedHuman(ScriptedExpert(env), env, config.takeover)
        seeds = [config.collect.seed + 100_000 * number + i for i in range(config.collect.interactions_per_round)]
        _, collected = play(config, task, VlaActor(champion, env.instruction, name=f"round-{number - 1}"), human,
                            seeds, "interaction")
        collect_seconds = time.perf_counter() - start
        episodes += collected
        steps = labelled(config, episodes)
        start = time.perf_counter()
        candidate = train_policy(config, steps, method, work / f"seed-{seed}" / f"{name}.work", reference=champion)
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        validation = score(config, candidate, task, "validation")
        test = score(config, candidate, task, "test", test_episodes)
        eval_seconds = time.perf_counter() - start
        promoted, reason = promotion_decision(
            validation, champion_val, rule=config.registry.promote_rule, margin=config.registry.promote_margin,
            max_suite_regression=config.registry.max_suite_regression)
        if promoted:
            champion_dir = work / f"seed-{seed}" / f"{name}-round-{number:04d}"
            candidate.save_pretrained(champion_dir)
            champion_val, champion_test = validation, test
        history.append({
            "round": number, "promoted": promoted, "reason": reason,
            **collection_figures(collected), "human_steps_total": int(np.sum(steps.labels == Label.HUMAN)),
            "candidate_validation": validation["success_rate"], "champion_validation": champion_val["success_rate"],
            "candidate_test": test["success_rate"], "champion_test": champion_test["success_rate"],
            "champion_gain_vs_round0": paired_gain(champion_test, base["test"]),
            "candidate_gain_vs_round0": paired_gain(test, base["test"]),
            "collect_seconds": collect_seconds, "train_seconds": train_seconds, "eval_seconds": eval_seconds,
        })
        gain = history[-1]["champion_gain_vs_round0"]
        print(f"seed {seed} {name} round {number}: candidate test {test['success_rate']:.0%}, "
              f"{'promoted' if promoted else 'kept champion'}; champion {champion_test['success_rate']:.0%} "
              f"({gain['difference']:+.0%} vs round 0); takeovers/ep {history[-1]['takeovers_per_episode']:.2f}; "
              f"train {train_seconds:.0f}s eval {eval_seconds:.0f}s", flush=True)
    return {"seed": seed, "method": name, "rounds": history}


def summary_rows(bases: list[dict], runs: list[dict], rounds: int) -> list[list]:
    """Per method and round: the candidate's and the champion's test success (mean ± sd over seeds), the
    champion's paired gain vs round 0, takeovers per collected episode, seconds."""
    base_rates = [b["test"]["success_rate"] for b in bases]
    base_validation = [b["validation"]["success_rate"] for b in bases]
    rows = [["base (BC)", 0, len(bases), f"{np.mean(base_validation):.0%} ± {np.std(base_validation):.0%}", "-",
             f"{np.mean(base_rates):.0%} ± {np.std(base_rates):.0%}", "-", "-", "-",
             round(float(np.mean([b["train_seconds"] for b in bases])), 1),
             round(float(np.mean([b["eval_seconds"] for b in bases])), 1)]]
    for name in dict.fromkeys(r["method"] for r in runs):
        for number in range(1, rounds + 1):
            entries = [r["rounds"][number - 1] for r in runs if r["method"] == name]
            rates = [e["champion_test"] for e in entries]
            gains = [e["champion_gain_vs_round0"] for e in entries]
            significant = sum(g["ci95_low"] > 0 for g in gains)
            candidates = [e["candidate_test"] for e in entries]
            validation = [e.get("candidate_validation", np.nan) for e in entries]
            rows.append([
                name, number, len(entries), f"{np.mean(validation):.0%} ± {np.std(validation):.0%}",
                f"{np.mean(candidates):.0%} ± {np.std(candidates):.0%}",
                f"{np.mean(rates):.0%} ± {np.std(rates):.0%}",
                f"{np.mean([g['difference'] for g in gains]):+.0%} ({significant}/{len(gains)} seeds CI > 0)",
                f"{np.mean([e['takeovers_per_episode'] for e in entries]):.2f}",
                f"{np.mean([e['promoted'] for e in entries]):.0%}",
                round(float(np.mean([e["train_seconds"] for e in entries])), 1),
                round(float(np.mean([e["eval_seconds"] for e in entries])), 1),
            ])
    return rows


def plot(bases: list[dict], runs: list[dict], rounds: int, path: Path) -> Path:
    """Champion test success and takeovers per episode, per round and method (mean ± sd over seeds)."""
    figure, (left, right) = pyplot().subplots(1, 2, figsize=(11, 4))
    base = [b["test"]["success_rate"] for b in bases]
    for name in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == name]
        base_of = {b["seed"]: b["test"]["success_rate"] for b in bases}
        success = np.array([[base_of[r["seed"]], *(e["champion_test"] for e in r["rounds"])] for r in mine])
        left.errorbar(range(rounds + 1), success.mean(axis=0), yerr=success.std(axis=0), marker="o", capsize=3,
                      label=name)
        takeovers = np.array([[e["takeovers_per_episode"] for e in r["rounds"]] for r in mine])
        right.errorbar(range(1, rounds + 1), takeovers.mean(axis=0), yerr=takeovers.std(axis=0), marker="s",
                       capsize=3, label=name)
    left.axhline(float(np.mean(base)), color="grey", linestyle=":", label="round 0 (BC)")
    left.set(title="champion success on test seeds (mean ± sd over seeds)", xlabel="round", ylabel="success",
             ylim=(0, 1), xticks=range(rounds + 1))
    right.set(title="takeovers per collected episode", xlabel="round (collected by the champion of round - 1)",
              ylabel="takeovers / episode", xticks=range(1, rounds + 1))
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    return save_figure(figure, path)


def main() -> None:
    from apo_core.config import parse_assignments

    parser = seeded_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--test-episodes", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2, help="processes at once (one core each)")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--name", default="learning", help="results: benchmarks/results/<name>.json / .png")
    parser.add_argument("--set", dest="settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every job, e.g. train.update_params=full train.lr=1e-4")
    parser.add_argument("--base-from", default=None, metavar="NAME",
                        help="reuse the round-0 models of an earlier run <NAME> (same demos and BC settings)")
    parser.add_argument("--report-only", action="store_true", help="report the finished jobs; run nothing")
    args = parser.parse_args()
    settings = parse_assignments(args.settings)

    work = RESULTS / f"{args.name}-work"
    if args.base_from:
        for s in args.seeds:
            source, target = RESULTS / f"{args.base_from}-work" / f"seed-{s}", work / f"seed-{s}"
            if not (target / "base.json").exists():
                shutil.copytree(source / "round-0000", target / "round-0000", dirs_exist_ok=True)
                shutil.copy2(source / "base.json", target / "base.json")
    started = time.perf_counter()
    if args.report_only:  # whatever jobs have finished, each row saying over how many seeds
        bases = [json.loads(p.read_text()) for s in args.seeds if (p := work / f"seed-{s}" / "base.json").exists()]
        runs = [json.loads(p.read_text()) for m in args.methods for s in args.seeds
                if (p := work / f"seed-{s}" / f"{m}.json").exists()]
    else:
        with job_pool(args.jobs) as pool:
            bases = run_all(pool, [(work / f"seed-{s}" / "base.json", base_job, args.config, settings, s, work,
                                    args.test_episodes) for s in args.seeds])
            # Method by method, every seed of one before the next: a run cut short has whole rows.
            runs = run_all(pool, [(work / f"seed-{s}" / f"{m}.json", method_job, args.config, settings, s, m,
                                   args.rounds, work, args.test_episodes) for m in args.methods for s in args.seeds])
    wall = time.perf_counter() - started
    rows = summary_rows(bases, runs, args.rounds)
    report(args.name, ["method", "round", "seeds", "candidate validation success", "candidate test success",
                       "champion test success", "paired gain vs round 0", "takeovers/ep", "promoted", "train s",
                       "eval s"], rows,
           {"seeds": args.seeds, "rounds": args.rounds, "test_episodes": args.test_episodes, "jobs": args.jobs,
            "wall_seconds": wall, "settings": settings,
            "config": seeded_config(args.config, 0, settings=settings).model_dump(mode="json"),
            "bases": bases, "runs": runs})
    print(f"plot: {plot(bases, runs, args.rounds, RESULTS / f'{args.name}.png')}; wall time {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
