"""The paper's perturbation experiment: a policy cloned in one world meets a perturbed one;
the human corrects it there, and each method updates it from those corrections.

    .venv/bin/python benchmarks/perturbation.py [--seeds 0 1 2]
        [--suites object-shift table-texture lighting camera-shift]
        [--methods dagger sirius kto apo] [--takeovers-only dagger apo] [--interactions 20]
        [--demos 20] [--test-episodes 100] [--jobs 2] [--config my.yaml] [--name perturbation]

For every seed (it changes the demonstrations' and collections' seeds and the training
seed) round 0 is behaviour-cloned from ``collect.expert_demos_per_task`` demonstrations in
the unperturbed world, as the loop's round 0 is. Then for each perturbation suite
(``evaluation.perturbations``, the worlds every round is scored on), as in the paper
(APO §V-B: 20 interactive and 20 expert trajectories per perturbation): round 0 plays
``--interactions`` episodes in the perturbed world with the simulated human taking over,
the scripted expert records ``--demos`` demonstrations there, and each method updates
round 0 (its reference) on them together with the unperturbed demonstrations. The
methods of ``--takeovers-only`` also update without the new demonstrations (the paper's
lifelong setting: the takeover episodes alone), as arms named ``<method>/takeovers-only``.
Every policy is scored on ``--test-episodes`` TEST seeds of the suite's world AND of the
unperturbed world (retention: does adapting to the new world forget the old?), each paired
with round 0 on the same seeds.

Prints per suite and method the test success (mean ± sd over seeds) and the paired
difference to round 0 (mean, and on how many seeds its 95% interval excludes 0), the same
two on the unperturbed world, and the average over suites beside the paper's (base 21.3,
KTO 24.0, APO 28.0). Writes
benchmarks/results/<name>.json and <name>.png; jobs (one per seed, then one per seed and
suite) run ``--jobs`` at a time and a re-run reuses finished ones from <name>-work/.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

# Run as `python benchmarks/perturbation.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    METHODS,
    RESULTS,
    collection_figures,
    expert_demos,
    job_pool,
    labelled,
    play_in,
    pyplot,
    report,
    run_all,
    save_figure,
    score,
    seeded_config,
    seeded_parser,
    world,
)

from apo_core.registry.gate import NO_PERTURBATION as PLAIN  # noqa: E402  (the unperturbed world's suite name)

PAPER_AVERAGE = {"base": 21.3, "kto": 24.0, "apo": 28.0}  # APO Table I, success % over its perturbations


def test_score(config, policy, task: str, suite: str, episodes: int) -> dict:
    """Success and per-seed outcomes of ``policy`` on the suite's test seeds."""
    return score(config, policy, task, "test", episodes, suites=[suite])


def paired(candidate: dict, base: dict, suite: str) -> dict:
    """Candidate minus round 0 on the suite's seeds (both were scored on the same ones)."""
    from apo_core.statistics import paired_difference

    mine, theirs = candidate["outcomes"][suite], base["outcomes"][suite]
    keys = sorted(theirs)
    return paired_difference(np.array([mine[k] for k in keys]), np.array([theirs[k] for k in keys])).to_dict()


def base_job(config_path: Path | None, seed: int, suites: list[str], work: Path, test_episodes: int) -> dict:
    """Round 0 of one seed, cloned in the unperturbed world, scored on every suite's test seeds."""
    import torch

    from apo_core.loop.update import train_policy

    config = seeded_config(config_path, seed)
    torch.set_num_threads(1)
    task = config.env.tasks[0]
    demos = expert_demos(config, task)
    policy = train_policy(config, labelled(config, demos), "bc", work / f"seed-{seed}" / "bc.work")
    policy.save_pretrained(work / f"seed-{seed}" / "round-0000")
    scores = {suite: test_score(config, policy, task, suite, test_episodes) for suite in suites}
    print(f"seed {seed}: round 0 " + ", ".join(f"{s} {v['suites'][s]:.0%}" for s, v in scores.items()), flush=True)
    return {"seed": seed, "task": task, "test": scores, "plain": test_score(config, policy, task, PLAIN, test_episodes)}


def arms(methods: list[str], takeovers_only: list[str]) -> list[tuple[str, str, bool]]:
    """(arm name, method, with the new demonstrations) of every update a suite runs."""
    return [(m, m, True) for m in methods] + [(f"{m}/takeovers-only", m, False) for m in takeovers_only]


def suite_job(config_path: Path | None, seed: int, suite: str, methods: list[str], takeovers_only: list[str],
              interactions: int, demos: int, work: Path, test_episodes: int) -> dict:
    """One suite of one seed: corrections and demonstrations in its world, then each method's update."""
    import json

    import torch

    from apo_core.human import ScriptedExpert, SimulatedHuman
    from apo_core.loop.update import train_policy
    from apo_core.policy import load_policy
    from apo_core.policy.actor import VlaActor

    config = seeded_config(config_path, seed)
    torch.set_num_threads(1)
    base = json.loads((work / f"seed-{seed}" / "base.json").read_text())
    task, base_dir = base["task"], work / f"seed-{seed}" / "round-0000"
    perturbed = world(config, task, suite)
    plain_demos = expert_demos(config, task)
    collected = play_in(config, perturbed, VlaActor(load_policy(base_dir), perturbed.instruction, name="round-0"),
                        SimulatedHuman(ScriptedExpert(perturbed), perturbed, config.takeover),
                        [config.collect.seed + 100_000 + i for i in range(interactions)], "interaction")
    suite_demos = play_in(config, perturbed, ScriptedExpert(perturbed), None,
                          [config.collect.seed + 200_000 + i for i in range(demos)], "expert")
    results = {}
    for arm, name, with_demos in arms(methods, takeovers_only):
        method, overrides = METHODS[name]
        method_config = seeded_config(config_path, seed, {"train": overrides})
        steps = labelled(config, plain_demos + (suite_demos if with_demos else []) + collected)
        start = time.perf_counter()
        candidate = train_policy(method_config, steps, method,
                                 work / f"seed-{seed}" / f"{suite}-{arm.replace('/', '-')}.work",
                                 reference=load_policy(base_dir))
        train_seconds = time.perf_counter() - start
        scored = test_score(config, candidate, task, suite, test_episodes)
        plain = test_score(config, candidate, task, PLAIN, test_episodes)
        results[arm] = {"test": scored["suites"][suite], "paired_vs_base": paired(scored, base["test"][suite], suite),
                        "plain": plain["success_rate"], "plain_paired_vs_base": paired(plain, base["plain"], PLAIN),
                        "train_seconds": train_seconds, "outcomes": scored["outcomes"]}
        print(f"seed {seed} {suite} {arm}: {scored['suites'][suite]:.0%} "
              f"({results[arm]['paired_vs_base']['difference']:+.0%} vs round 0); unperturbed "
              f"{plain['success_rate']:.0%} ({results[arm]['plain_paired_vs_base']['difference']:+.0%})", flush=True)
    return {"seed": seed, "suite": suite, "base": base["test"][suite]["suites"][suite],
            "base_plain": base["plain"]["success_rate"], **collection_figures(collected), "methods": results}


def _rate_and_gain(per_seed: dict, rate: str, gain: str, average: bool) -> tuple[str, str]:
    """Mean ± sd over seeds of a rate (%), and the mean paired gain (points) with on how many
    seeds its interval lies above 0 (per suite only)."""
    rates = [100 * np.mean([m[rate] for m in ms]) for ms in per_seed.values()]
    gains = [100 * np.mean([m[gain]["difference"] for m in ms]) for ms in per_seed.values()]
    significant = sum(ms[0][gain]["ci95_low"] > 0 for ms in per_seed.values())
    where = "" if average else f" ({significant}/{len(rates)} seeds CI > 0)"
    return f"{np.mean(rates):.1f} ± {np.std(rates):.1f}", f"{np.mean(gains):+.1f}{where}"


def summary_rows(runs: list[dict], suites: list[str], names: list[str]) -> list[list]:
    """Per suite (and the average) and arm: success in the perturbed world and in the
    unperturbed one (retention), each with its paired gain over round 0."""
    rows = []
    for suite in [*suites, "average"]:
        mine = [r for r in runs if suite in (r["suite"], "average")]
        seeds = sorted({r["seed"] for r in mine})
        base = [100 * np.mean([r["base"] for r in mine if r["seed"] == s]) for s in seeds]
        plain = [100 * np.mean([r["base_plain"] for r in mine if r["seed"] == s]) for s in seeds]
        rows.append([suite, "base (BC)", len(base), f"{np.mean(base):.1f} ± {np.std(base):.1f}", "-",
                     f"{np.mean(plain):.1f} ± {np.std(plain):.1f}", "-",
                     PAPER_AVERAGE["base"] if suite == "average" else "-"])
        for name in names:
            per_seed = {}
            for r in mine:
                per_seed.setdefault(r["seed"], []).append(r["methods"][name])
            adapted = _rate_and_gain(per_seed, "test", "paired_vs_base", suite == "average")
            retained = _rate_and_gain(per_seed, "plain", "plain_paired_vs_base", suite == "average")
            rows.append([suite, name, len(per_seed), *adapted, *retained,
                         PAPER_AVERAGE.get(name, "-") if suite == "average" else "-"])
    return rows


def plot(runs: list[dict], suites: list[str], methods: list[str], path: Path) -> Path:
    figure, axis = pyplot().subplots(figsize=(10, 4))
    names = ["base", *methods]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        means, errors = [], []
        for suite in suites:
            values = [100 * (r["base"] if name == "base" else r["methods"][name]["test"])
                      for r in runs if r["suite"] == suite]
            means.append(np.mean(values))
            errors.append(np.std(values))
        axis.bar(np.arange(len(suites)) + i * width, means, width, yerr=errors, capsize=2, label=name)
    axis.set(xticks=np.arange(len(suites)) + 0.4 - width / 2, xticklabels=suites, ylabel="test success %",
             title="success in each perturbed world after one update (mean ± sd over seeds)")
    axis.legend(fontsize=7)
    return save_figure(figure, path)


def main() -> None:
    parser = seeded_parser(__doc__)
    parser.add_argument("--suites", nargs="+", default=None, help="default: every evaluation.perturbations suite")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=["dagger", "sirius", "kto", "apo"])
    parser.add_argument("--takeovers-only", nargs="*", choices=list(METHODS), default=["dagger", "apo"],
                        help="methods that also update on the takeover episodes alone (no new demonstrations)")
    parser.add_argument("--interactions", type=int, default=20)
    parser.add_argument("--demos", type=int, default=20)
    parser.add_argument("--test-episodes", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--name", default="perturbation")
    args = parser.parse_args()
    suites = args.suites or [p.name for p in seeded_config(args.config, 0).evaluation.perturbations]

    work = RESULTS / f"{args.name}-work"
    started = time.perf_counter()
    with job_pool(args.jobs) as pool:
        run_all(pool, [(work / f"seed-{s}" / "base.json", base_job, args.config, s, suites, work,
                        args.test_episodes) for s in args.seeds])
        runs = run_all(pool, [(work / f"seed-{s}" / f"{suite}.json", suite_job, args.config, s, suite, args.methods,
                               args.takeovers_only, args.interactions, args.demos, work, args.test_episodes)
                              for suite in suites for s in args.seeds])
    wall = time.perf_counter() - started
    names = [arm for arm, _, _ in arms(args.methods, args.takeovers_only)]
    report(args.name, ["suite", "method", "seeds", "test success %", "paired vs round 0 (points)",
                       "unperturbed success %", "unperturbed vs round 0 (points)", "paper %"],
           summary_rows(runs, suites, names),
           {"command": " ".join(sys.argv), "wall_seconds": wall, "seeds": args.seeds, "suites": suites,
            "interactions": args.interactions, "demos": args.demos, "test_episodes": args.test_episodes,
            "config": seeded_config(args.config, 0).model_dump(mode="json"), "runs": runs})
    print(f"plot: {plot(runs, suites, names, RESULTS / f'{args.name}.png')}; wall time {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
