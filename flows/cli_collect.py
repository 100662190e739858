"""`apo collect`, `apo train` and `apo evaluate`: deploy a policy and record episodes, train a model (BC or a
preference update), and run seeded evaluation episodes; plus the helpers that resolve a policy spec
(expert | random | round number | model directory) to an actor, episode directory and seed range.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apo_core.config import ApoConfig, with_overrides
from apo_core.errors import ApoError
from flows.cli_common import UPDATE_METHODS

ADHOC_SEEDS = 1_000  # seeds per robot of a collection outside the loop's rounds
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
                       help="episode directories (default: bc: the expert demos; others: demos + every round)")
    train.add_argument("--from", dest="reference", type=Path, default=None,
                       help="the previous round's model directory (the reference; required except for bc)")
    train.add_argument("--out", type=Path, default=None, help="where to save the new model")
    train.add_argument("--steps", type=int, default=None, help="bc: override train.bc_steps")
    train.add_argument("--epochs", type=float, default=None,
                       help="updates: override train.epochs (passes over the human-correction steps)")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="seeded evaluation episodes per task and perturbation suite")
    evaluate.add_argument("--model", required=True, help="a model directory, or 'expert' / 'random'")
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


def _collection(config: ApoConfig, policy: str, task: str, robot: str) -> tuple[Path, str, int, int]:
    """Where a collection goes, its name (part of every episode id), its first seed and how
    many seeds it has.

    Interactions collected by policy round N are the new data of round N + 1, on the
    robot's seeds of that round; other collections have seed blocks of their own, each
    robot ``ADHOC_SEEDS`` of them, all within round 0's collection seeds.
    """
    from apo_core.loop.layout import interaction_dir
    from apo_core.rounds import round_name

    if policy.isdigit():
        number = int(policy) + 1
        return (interaction_dir(config, number, task, robot), round_name(number),
                config.collect.round_seed(number, robot), config.collect.seeds_per_robot)
    name = policy if policy in ("expert", "random") else f"model-{Path(policy).resolve().name}"
    first = config.collect.seed + {"expert": 0, "random": 50_000}.get(policy, 75_000)
    return (config.paths.episodes / name / task, name, first + ADHOC_SEEDS * config.collect.robot_index(robot),
            ADHOC_SEEDS)


def _load_policy(directory: Path):
    from apo_core.policy import load_policy

    try:
        return load_policy(directory)
    except FileNotFoundError as exc:
        raise ApoError(str(exc)) from None


def _resolve_actor(policy: str, env, config: ApoConfig):
    """expert | random | a round number (that round of the model store, deployed verified) | a model directory."""
    from apo_core.actors import RandomActor
    from apo_core.human import ScriptedExpert
    from apo_core.policy.actor import VlaActor

    if policy == "expert":
        return ScriptedExpert(env)
    if policy == "random":
        return RandomActor(env.action_dim)
    if policy.isdigit():
        from apo_core.loop.robots import deploy_round

        directory = deploy_round(config, int(policy))
    else:
        directory = Path(policy)
    return VlaActor(_load_policy(directory), env.instruction, name=f"vla:{directory.name}")


def run_collect(
    config: ApoConfig,
    *,
    task: str,
    episodes: int,
    policy: str,
    out: Path | None = None,
    perturbation_name: str | None = None,
    human: bool = True,
    robot: str | None = None,
):
    """Add ``episodes`` episodes of ``policy`` on ``task`` as ``robot`` (holding its writer
    lock); print and return the summary."""
    from apo_core.recording.locks import robot_lock

    if episodes < 1:
        raise ApoError(f"--episodes must be >= 1, got {episodes}")
    robot = robot or config.collect.robots[0]
    config.collect.robot_index(robot)  # an unknown robot is refused here
    with robot_lock(config.paths.workdir, robot):
        return _collect_as(config, task=task, episodes=episodes, policy=policy, out=out,
                           perturbation_name=perturbation_name, human=human, robot=robot)


def _collect_as(config: ApoConfig, *, task: str, episodes: int, policy: str, out: Path | None,
                perturbation_name: str | None, human: bool, robot: str):
    """:func:`run_collect` once ``robot``'s writer lock is held."""
    from apo_core.envs import make_env
    from apo_core.human import ScriptedExpert, SimulatedHuman
    from apo_core.recording.collector import collect_episodes
    from apo_core.recording.store import EpisodeStore
    from tasks.progress import StepProgress

    collection_dir, collection, first_seed, capacity = _collection(config, policy, task, robot)
    recorded = len(EpisodeStore(out or collection_dir))
    if recorded + episodes > capacity:
        raise ApoError(f"{out or collection_dir}: {recorded} episodes recorded + {episodes} more would exceed the "
                       f"{capacity} seeds of robot {robot} for this collection")
    perturbation = config.perturbation(perturbation_name) if perturbation_name else None
    env = make_env(task, config.env, perturbation)
    actor = _resolve_actor(policy, env, config)
    store = EpisodeStore.for_writing(out or collection_dir)
    source = "expert" if policy == "expert" else "interaction"
    overseer = SimulatedHuman(ScriptedExpert(env), env, config.takeover) if human and source != "expert" else None
    done: list[bool] = []

    def on_episode(episode, _path) -> None:
        done.append(episode.meta.success)
        progress.update(len(done), success=f"{sum(done) / len(done):.0%}")

    with StepProgress(f"collect {task} ({policy})", episodes, "episodes") as progress:
        summary = collect_episodes(
            env,
            actor,
            overseer,
            store,
            collection=collection,
            episodes=episodes,
            base_seed=first_seed,
            source=source,
            policy_round=int(policy) if policy.isdigit() else None,
            robot_id=robot,
            fps=config.env.fps,
            perturbation=perturbation_name,
            on_episode=on_episode,
        )
    _print_summary(task, policy, store.directory, summary)
    return summary


def _print_summary(task: str, policy: str, directory: Path, summary) -> None:
    """What was recorded; the steps are labelled once, when a round's dataset is built."""
    print(f"task {task}, policy {policy}: {summary.episodes} episodes -> {directory}")
    print(f"  success rate        {summary.success_rate:6.1%}  ({summary.successes}/{summary.episodes})")
    print(f"  takeovers/episode   {summary.takeovers_per_episode:6.2f}")
    print(f"  human-step share    {summary.human_step_share:6.1%}  ({summary.human_steps}/{summary.steps} steps)")


def _episode_dirs(config: ApoConfig, method: str) -> list[Path]:
    """The demos, and for an update every round's interactions (every robot's)."""
    from apo_core.loop.layout import expert_dir, round_interaction_dirs

    directories = [expert_dir(config, task) for task in config.env.tasks if expert_dir(config, task).is_dir()]
    if method != "bc":
        for root in sorted(config.paths.episodes.glob("round-*")):
            directories += round_interaction_dirs(config, int(root.name.split("-")[1]), config.env.tasks)
    return directories


def run_train(config: ApoConfig, *, method: str, data: list[Path] | None, reference: Path | None,
              out: Path | None, steps: int | None = None, epochs: float | None = None) -> Path:
    """Train a model (BC from scratch, or a preference update of ``reference``) and save it."""
    from apo_core.data.steps import load_steps
    from apo_core.loop.learner import save_model, train_policy
    from tasks.progress import StepProgress

    if method != "bc" and reference is None:
        raise ApoError(f"--method {method} needs --from: the previous round's model (the reference)")
    directories = data or _episode_dirs(config, method)
    if not directories:
        raise ApoError(f"no episode directories under {config.paths.episodes}; run `apo collect` first")
    budget = {"bc_steps": steps} if method == "bc" and steps is not None else {}
    if method != "bc" and epochs is not None:
        budget = {"epochs": epochs}
    if budget:
        config = with_overrides(config, {"train": budget})
    out = out or config.paths.models / method
    policy = _load_policy(reference) if reference is not None else None
    try:
        labelled = load_steps(directories, config.labels, policy.action_normalizer if policy else None)
    except ValueError as exc:
        raise ApoError(str(exc)) from None
    with StepProgress(f"train {method}", None, "steps") as progress:
        def on_step(step, total, metrics):
            progress.update(step, total, loss=f"{metrics['loss']:.4f}")

        def on_notice(message: str) -> None:
            progress.note(f"apo: note: {message}")

        try:
            policy = train_policy(config, labelled, method, out.with_name(out.name + ".work"), reference=policy,
                                  on_step=on_step, on_notice=on_notice)
        except ValueError as exc:
            raise ApoError(str(exc)) from None
    save_model(policy, out, {"method": method, "episode_directories": [str(d) for d in directories],
                             "data_fingerprint": labelled.fingerprint(), "rows": len(labelled),
                             "episodes": len(set(labelled.episode_ids)), "threads": config.train.threads,
                             "config": config.model_dump(mode="json")})
    print(f"{method}: trained on {len(labelled)} steps from {len(directories)} episode directories -> {out}")
    return out


def run_evaluate(config: ApoConfig, *, model: str, tasks: list[str] | None, suites: list[str] | None,
                 episodes: int | None, with_human: bool, json_path: Path | None, split: str = "validation"):
    import json

    from apo_core.evaluate import evaluate

    if episodes is not None and not 1 <= episodes <= MAX_EVALUATION_EPISODES:
        raise ApoError(f"--episodes must be in [1, {MAX_EVALUATION_EPISODES}], got {episodes}")
    policy = None if model in ("expert", "random") else _load_policy(Path(model))

    def make_actor(env):
        if policy is None:
            return _resolve_actor(model, env, config)
        from apo_core.policy.actor import VlaActor

        return VlaActor(policy, env.instruction, name=str(model))

    from apo_core.evaluate import evaluation_seeds
    from tasks.progress import StepProgress

    suite_names = suites or ["none"]
    total = len(tasks or config.env.tasks) * sum(len(evaluation_seeds(config, s, split, episodes)) for s in suite_names)
    successes = []

    def on_episode(outcome) -> None:
        successes.append(outcome.success)
        progress.update(len(successes), success=f"{sum(successes) / len(successes):.0%}")

    with StepProgress(f"evaluate ({split} seeds)", total, "episodes") as progress:
        results = evaluate(config, make_actor, tasks=tasks, suites=suites, episodes=episodes, with_human=with_human,
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
