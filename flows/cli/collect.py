"""`apo collect`, `apo train` and `apo evaluate`: deploy a policy and record episodes, train a model (BC or a
preference update), and run seeded evaluation episodes. Parsing and printing only: the collection is
apo_core.loop.robots.collect_by_hand, the training apo_core.loop.update.train_on_episodes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apo_core.config import UPDATE_METHODS, ApoConfig, with_overrides
from apo_core.errors import ApoError

MAX_EVALUATION_EPISODES = 100_000  # evaluation.episodes' bound, for --episodes too


def add_commands(commands) -> None:
    """Add collect, train and evaluate to the ``apo`` subparsers."""
    collect = commands.add_parser("collect", help="deploy a policy with the simulated human watching; record episodes")
    collect.add_argument("--task", required=True, help="MetaWorld task, e.g. push, pick-place")
    collect.add_argument("--episodes", type=int, required=True, help="how many episodes to add")
    collect.add_argument("--policy", type=_policy_spec, required=True,
                         help="expert | random | a round number (its stored model) | a model directory")
    collect.add_argument("--out", type=Path, default=None, help="episode directory (default: under the workdir)")
    collect.add_argument("--perturbation", default=None, help="a perturbation suite named in the config")
    collect.add_argument("--no-human", action="store_true", help="deploy without the simulated human")
    collect.add_argument("--robot", default=None, help="the robot recording (default: the first of collect.robots)")
    collect.set_defaults(handler=_collect)

    train = commands.add_parser("train", help="behaviour cloning (bc) or a preference update from a previous model")
    train.add_argument("--method", choices=["bc", *UPDATE_METHODS], required=True)
    train.add_argument("--data", type=Path, nargs="+", default=None,
                       help="folders holding episodes, at any depth (default: every episode of the workdir: bc: "
                            "the demonstrations; others: the demonstrations, every round and every collection)")
    train.add_argument("--from", dest="reference", type=Path, default=None,
                       help="the previous round's model directory (the reference; required except for bc)")
    train.add_argument("--out", type=Path, default=None, help="where to save the new model")
    train.add_argument("--steps", type=int, default=None, help="bc: override train.bc_steps")
    train.add_argument("--epochs", type=float, default=None,
                       help="updates: override train.epochs (passes over the human-correction steps)")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="seeded evaluation episodes per task and perturbation suite")
    evaluate.add_argument("--model", required=True, help="a model directory, a stored round's number, or 'expert' / 'random'")
    evaluate.add_argument("--task", nargs="+", default=None, help="tasks (default: env.tasks)")
    evaluate.add_argument("--suite", nargs="+", default=None,
                          help="'none' and/or perturbation suites from the config (default: none)")
    evaluate.add_argument("--episodes", type=int, default=None, help="per task and suite (default: evaluation.episodes)")
    evaluate.add_argument("--with-human", action="store_true", help="deploy with the simulated human (intervention rate)")
    evaluate.add_argument("--split", choices=["validation", "test"], default="validation",
                          help="seed range: validation (choosing settings, the gate) or test (reporting)")
    evaluate.add_argument("--json", type=Path, default=None, help="also write the results here")
    evaluate.set_defaults(handler=_evaluate)


def _collect(config: ApoConfig, args: argparse.Namespace) -> None:
    run_collect(
        config,
        task=args.task,
        episodes=args.episodes,
        policy=args.policy,
        out=args.out,
        perturbation_name=args.perturbation,
        human=not args.no_human,
        robot=args.robot,
    )


def _train(config: ApoConfig, args: argparse.Namespace) -> None:
    run_train(config, method=args.method, data=args.data, reference=args.reference,
              out=args.out, steps=args.steps, epochs=args.epochs)


def _evaluate(config: ApoConfig, args: argparse.Namespace) -> None:
    run_evaluate(config, model=args.model, tasks=args.task, suites=args.suite, episodes=args.episodes,
                 with_human=args.with_human, json_path=args.json, split=args.split)


def _policy_spec(value: str) -> str:
    if value in ("expert", "random") or value.isdigit() or Path(value).is_dir():
        return value
    raise argparse.ArgumentTypeError(f"expected 'expert', 'random', a round number or a model directory, got {value!r}")


def run_collect(config: ApoConfig, *, task: str, episodes: int, policy: str, out: Path | None = None,
                perturbation_name: str | None = None, human: bool = True, robot: str | None = None):
    """Add ``episodes`` episodes of ``policy`` on ``task`` as ``robot``; print and return the summary."""
    from apo_core.loop.robots import collect_by_hand
    from tasks.progress import StepProgress

    done: list[bool] = []

    def on_episode(episode, _path) -> None:
        done.append(episode.meta.success)
        progress.update(len(done), success=f"{sum(done) / len(done):.0%}")

    with StepProgress(f"collect {task} ({policy})", episodes, "episodes") as progress:
        summary, directory = collect_by_hand(config, task=task, episodes=episodes, policy=policy,
                                             robot=robot or config.collect.robots[0], out=out,
                                             perturbation=perturbation_name, human=human, on_episode=on_episode)
    _print_summary(task, policy, directory, summary)
    return summary


def _print_summary(task: str, policy: str, directory: Path, summary) -> None:
    """What was recorded; the steps are labelled once, when a round's dataset is built."""
    print(f"task {task}, policy {policy}: {summary.episodes} episodes -> {directory}")
    print(f"  success rate        {summary.success_rate:6.1%}  ({summary.successes}/{summary.episodes})")
    print(f"  takeovers/episode   {summary.takeovers_per_episode:6.2f}")
    print(f"  human-step share    {summary.human_step_share:6.1%}  ({summary.human_steps}/{summary.steps} steps)")


def run_train(config: ApoConfig, *, method: str, data: list[Path] | None, reference: Path | None,
              out: Path | None, steps: int | None = None, epochs: float | None = None) -> Path:
    """Train a model (BC from scratch, or a preference update of ``reference``) and save it."""
    from apo_core.loop.update import train_on_episodes
    from apo_core.workdir import trained_model_dir
    from tasks.progress import StepProgress

    budget = {"bc_steps": steps} if method == "bc" and steps is not None else {}
    if method != "bc" and epochs is not None:
        budget = {"epochs": epochs}
    if budget:
        config = with_overrides(config, {"train": budget})
    with StepProgress(f"train {method}", None, "steps") as progress:
        def on_step(step, total, metrics):
            progress.update(step, total, loss=f"{metrics['loss']:.4f}")

        def on_notice(message: str) -> None:
            progress.note(f"apo: note: {message}")

        out, labelled, folders = train_on_episodes(config, method, data, reference, out or trained_model_dir(config, method),
                                                   on_step=on_step, on_notice=on_notice)
    print(f"{method}: trained on {len(labelled)} steps from {len(folders)} episode directories -> {out}")
    return out


def run_evaluate(config: ApoConfig, *, model: str, tasks: list[str] | None, suites: list[str] | None,
                 episodes: int | None, with_human: bool, json_path: Path | None, split: str = "validation"):
    import json

    from apo_core.evaluate import evaluate

    if episodes is not None and not 1 <= episodes <= MAX_EVALUATION_EPISODES:
        raise ApoError(f"--episodes must be in [1, {MAX_EVALUATION_EPISODES}], got {episodes}")
    from apo_core.evaluate import evaluation_seeds
    from apo_core.loop.robots import actor_factory
    from tasks.progress import StepProgress

    suite_names = suites or ["none"]
    total = len(tasks or config.env.tasks) * sum(len(evaluation_seeds(config, s, split, episodes)) for s in suite_names)
    successes = []

    def on_episode(outcome) -> None:
        successes.append(outcome.success)
        progress.update(len(successes), success=f"{sum(successes) / len(successes):.0%}")

    with StepProgress(f"evaluate ({split} seeds)", total, "episodes") as progress:
        results = evaluate(config, actor_factory(config, model), tasks=tasks, suites=suites, episodes=episodes, with_human=with_human,
                           split=split, on_episode=on_episode)
    print(f"{'task':<18}{'suite':<16}{'success':>9}  {'95% CI':<15}{'length':>7}{'takeovers/ep':>14}{'human share':>13}")
    for r in results:
        low, high = r.interval
        takeovers = "-" if r.takeovers_per_episode is None else f"{r.takeovers_per_episode:.2f}"
        share = "-" if r.human_step_share is None else f"{r.human_step_share:.1%}"
        print(f"{r.task:<18}{r.suite:<16}{r.success_rate:>8.0%}  [{low:.2f}, {high:.2f}]   {r.mean_length:>7.1f}"
              f"{takeovers:>14}{share:>13}")
    if json_path is not None:
        json_path.write_text(json.dumps([r.to_dict() for r in results], indent=2))
    return results
