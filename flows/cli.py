"""`apo`: the command line of the lifelong-learning pipeline.

Every subcommand reads one validated config (``--config``, default configs/default.yaml).
User errors (bad config, unknown task, unwritable directory...) print one line and exit 2.
Heavy libraries (torch, mujoco, lerobot) are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from apo_core.config import ApoConfig, load_config, with_overrides
from apo_core.errors import ApoError

EXIT_USER_ERROR = 2
UPDATE_METHODS = ["dagger", "sirius", "dpo", "kto", "apo"]


def _policy_spec(value: str) -> str:
    if value in ("expert", "random") or value.isdigit() or Path(value).is_dir():
        return value
    raise argparse.ArgumentTypeError(f"expected 'expert', 'random', a round number or a model directory, got {value!r}")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="YAML config (default: configs/default.yaml)")
    parser.add_argument("--workdir", type=Path, default=None, help="override paths.workdir")
    commands = parser.add_subparsers(dest="command", required=True)

    collect = commands.add_parser("collect", help="deploy a policy with the simulated human watching; record episodes")
    collect.add_argument("--task", required=True, help="MetaWorld task, e.g. push, pick-place")
    collect.add_argument("--episodes", type=int, required=True, help="how many episodes to add")
    collect.add_argument("--policy", type=_policy_spec, required=True, help="expert | random | <round number>")
    collect.add_argument("--out", type=Path, default=None, help="episode directory (default: under the workdir)")
    collect.add_argument("--perturbation", default=None, help="a perturbation suite named in the config")
    collect.add_argument("--no-human", action="store_true", help="deploy without the simulated human")

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

    dataset = commands.add_parser("dataset", help="the versioned LeRobot dataset (git + DVC)")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    build = dataset_commands.add_parser("build", help="label + append episodes, then version round N")
    build.add_argument("round", type=int)
    build.add_argument("--data", type=Path, nargs="+", default=None,
                       help="episode directories (default: expert demos + interactions of rounds 1..N)")
    checkout = dataset_commands.add_parser("checkout", help="restore exactly the dataset of round N")
    checkout.add_argument("round", type=int)

    lineage = commands.add_parser("lineage", help="which episodes, labelled how, made a round's dataset")
    lineage.add_argument("round", type=int, nargs="?", default=None)
    lineage.add_argument("--json", action="store_true", help="machine-readable output")

    publish = commands.add_parser("publish", help="store a trained model as an immutable round")
    publish.add_argument("round", type=int)
    publish.add_argument("--model", type=Path, required=True)
    publish.add_argument("--method", required=True)
    publish.add_argument("--parent", type=int, default=None, help="the round it was trained from")
    publish.add_argument("--metrics", type=Path, default=None, help="`apo evaluate --json` output")

    commands.add_parser("rounds", help="list the stored rounds and the champion")
    rollback = commands.add_parser("rollback", help="re-point the champion to an earlier round (+ its dataset)")
    rollback.add_argument("round", type=int)
    rollback.add_argument("--reason", required=True)
    commands.add_parser("audit", help="print the promote / reject / rollback log")

    demo = commands.add_parser("demo", help="bootstrap + 3 APO rounds on the embedded defaults (ephemeral Prefect)")
    demo.add_argument("--rounds", type=int, default=3)
    run = commands.add_parser("run", help="the loop with your config (S3, a Prefect server via PREFECT_API_URL, ...)")
    run.add_argument("--rounds", type=int, default=3, help="run until this many loop rounds exist")
    run.add_argument("--method", choices=UPDATE_METHODS, default="apo")
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    return {"paths": {"workdir": str(args.workdir)}} if args.workdir is not None else {}


def _episode_dir(config: ApoConfig, policy: str, task: str) -> Path:
    """Interactions collected by policy round N are the new data of round N + 1."""
    if policy.isdigit():
        tag = f"round-{int(policy) + 1:04d}"
    elif policy in ("expert", "random"):
        tag = policy
    else:
        tag = f"model-{Path(policy).resolve().name}"
    return config.paths.episodes / tag / task


def _base_seed(config: ApoConfig, policy: str) -> int:
    """Disjoint seed ranges per collection, so no two collections replay one layout."""
    if policy.isdigit():
        return config.collect.seed + 100_000 * (1 + int(policy))
    return config.collect.seed + {"expert": 0, "random": 50_000}.get(policy, 75_000)


def _load_policy(directory: Path):
    from apo_core.policy import ApoVlaPolicy

    try:
        return ApoVlaPolicy.from_pretrained(directory)
    except FileNotFoundError as exc:
        raise ApoError(str(exc)) from None


def _round_dir(config: ApoConfig, round_number: int) -> Path:
    return config.paths.models / f"round-{round_number:04d}"


def _resolve_actor(policy: str, env, config: ApoConfig):
    """expert | random | a round number (under the workdir's models/) | a model directory."""
    from apo_core.actors import RandomActor
    from apo_core.human import ScriptedExpert
    from apo_core.policy.actor import VlaActor

    if policy == "expert":
        return ScriptedExpert(env)
    if policy == "random":
        return RandomActor(env.action_dim)
    directory = _round_dir(config, int(policy)) if policy.isdigit() else Path(policy)
    if not directory.is_dir():
        raise ApoError(f"policy {policy}: no trained model at {directory}")
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
):
    """Add ``episodes`` episodes of ``policy`` on ``task``; print and return the summary."""
    from tqdm import tqdm

    from apo_core.collect import collect_episodes
    from apo_core.envs import make_env
    from apo_core.episodes import EpisodeStore
    from apo_core.human import ScriptedExpert, SimulatedHuman
    from apo_core.labels import label_counts, label_steps

    if episodes < 1:
        raise ApoError(f"--episodes must be >= 1, got {episodes}")
    perturbation = config.perturbation(perturbation_name) if perturbation_name else None
    env = make_env(task, config.env, perturbation)
    actor = _resolve_actor(policy, env, config)
    store = EpisodeStore.for_writing(out or _episode_dir(config, policy, task))
    source = "expert" if policy == "expert" else "interaction"
    overseer = SimulatedHuman(ScriptedExpert(env), env, config.takeover) if human and source != "expert" else None
    start = store.next_index()
    counts: dict[str, int] = {}

    def count_labels(episode, _path) -> None:
        progress.update(1)
        if episode.meta.source == "expert":
            counts["expert_demo"] = counts.get("expert_demo", 0) + len(episode)
            return
        labels = label_steps(episode.acted_by, k=config.labels.k, episode_success=episode.meta.success,
                             label_unrescued_failure=config.labels.label_unrescued_failure)
        for name, count in label_counts(labels).items():
            counts[name] = counts.get(name, 0) + count

    with tqdm(total=episodes, desc=f"collect {task} ({policy})", unit="ep", file=sys.stderr) as progress:
        summary = collect_episodes(
            env,
            actor,
            overseer,
            store,
            collection=_episode_dir(config, policy, task).parent.name,
            until=start + episodes,
            base_seed=_base_seed(config, policy),
            source=source,
            policy_round=int(policy) if policy.isdigit() else None,
            robot_id=config.collect.robot_id,
            fps=config.env.fps,
            perturbation=perturbation_name,
            on_episode=count_labels,
        )
    _print_summary(task, policy, store.directory, summary, counts, config.labels.k)
    return summary


def _print_summary(task: str, policy: str, directory: Path, summary, counts: dict[str, int], k: int) -> None:
    print(f"task {task}, policy {policy}: {summary.episodes} episodes -> {directory}")
    print(f"  success rate        {summary.success_rate:6.1%}  ({summary.successes}/{summary.episodes})")
    print(f"  takeovers/episode   {summary.takeovers_per_episode:6.2f}")
    print(f"  human-step share    {summary.human_step_share:6.1%}  ({summary.human_steps}/{summary.steps} steps)")
    print("  labels (K=%d)       " % k + ", ".join(f"{name.lower()} {n}" for name, n in counts.items() if n))


def _episode_dirs(config: ApoConfig, method: str) -> list[Path]:
    roots = [config.paths.episodes / "expert"]
    if method != "bc":
        roots += sorted(config.paths.episodes.glob("round-*"))
    return [root / task for root in roots for task in config.env.tasks if (root / task).is_dir()]


def run_train(config: ApoConfig, *, method: str, data: list[Path] | None, reference: Path | None,
              out: Path | None, steps: int | None = None, epochs: float | None = None) -> Path:
    """Train a model (BC from scratch, or a preference update of ``reference``) and save it."""
    from tqdm import tqdm

    from apo_core.data.steps import load_steps
    from apo_core.loop import train_policy

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
        labelled = load_steps(directories, config.labels, policy.action_tokenizer if policy else None)
    except ValueError as exc:
        raise ApoError(str(exc)) from None
    with tqdm(desc=f"train {method}", unit="step", file=sys.stderr) as progress:
        def on_step(step, total, metrics):
            progress.total = total
            progress.update(1)
            progress.set_postfix(loss=f"{metrics['loss']:.4f}")

        try:
            policy = train_policy(config, labelled, method, out.with_name(out.name + ".work"), reference=policy,
                                  on_step=on_step)
        except ValueError as exc:
            raise ApoError(str(exc)) from None
    policy.save_pretrained(out)
    print(f"{method}: trained on {len(labelled)} steps from {len(directories)} episode directories -> {out}")
    return out


def run_evaluate(config: ApoConfig, *, model: str, tasks: list[str] | None, suites: list[str] | None,
                 episodes: int | None, with_human: bool, json_path: Path | None, split: str = "validation"):
    import json

    from apo_core.evaluate import evaluate

    if episodes is not None and episodes < 1:
        raise ApoError(f"--episodes must be >= 1, got {episodes}")
    policy = None if model in ("expert", "random") else _load_policy(Path(model))

    def make_actor(env):
        if policy is None:
            return _resolve_actor(model, env, config)
        from apo_core.policy.actor import VlaActor

        return VlaActor(policy, env.instruction, name=str(model))

    results = evaluate(config, make_actor, tasks=tasks, suites=suites, episodes=episodes, with_human=with_human,
                       split=split, render=policy is None or policy.config.use_image)
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


def run_dataset_build(config: ApoConfig, round_number: int, data: list[Path] | None) -> None:
    from apo_core.data.round_dataset import version_round
    from apo_core.loop import dataset_sources

    sources = data or dataset_sources(config, round_number, config.env.tasks)
    if not sources:
        raise ApoError(f"no episode directories under {config.paths.episodes}; run `apo collect` first")
    version, summary, record = version_round(config, round_number, sources)
    added = "already versioned" if summary is None else f"{len(summary.episodes_added)} episodes added"
    print(f"dataset round {round_number}: {added}; md5 {version.md5}, tag {version.tag}, commit {version.commit[:10]}")
    print("  labels: " + ", ".join(f"{name} {count}" for name, count in record["label_counts"].items()))


def run_dataset_checkout(config: ApoConfig, round_number: int) -> None:
    from apo_core.data.round_dataset import workspace_for

    version = workspace_for(config).checkout(round_number)
    print(f"datasets/ is now round {round_number}: md5 {version.md5} ({version.tag})")


def run_lineage(config: ApoConfig, round_number: int | None, as_json: bool) -> None:
    import json

    from apo_core.data.lineage import read_record, rounds_with_lineage

    root = config.dataset_workspace
    rounds = [round_number] if round_number is not None else rounds_with_lineage(root)
    if not rounds:
        raise ApoError(f"{root}: no lineage records yet; run `apo dataset build` first")
    records = [read_record(root, r) for r in rounds]
    if as_json:
        print(json.dumps(records if round_number is None else records[0], indent=2))
        return
    print(f"{'round':>5}  {'dataset md5':<38}{'tag':<20}{'commit':<12}{'episodes':>9}{'new':>5}  labels")
    for r in records:
        labels = ", ".join(f"{k} {v}" for k, v in r["label_counts"].items())
        print(f"{r['round']:>5}  {r['dataset_md5']:<38}{r['git_tag']:<20}{r['git_commit'][:10]:<12}"
              f"{len(r['episodes']):>9}{len(r['new_episode_ids']):>5}  {labels}")
    if round_number is not None:
        print(f"\n{'episode':<40}{'round':>6}  {'source':<12}labels")
        for e in records[0]["episodes"]:
            print(f"{e['episode_id']:<40}{e['round']:>6}  {e['source']:<12}"
                  + ", ".join(f"{k} {v}" for k, v in e["labels"].items()))


def _registry(config: ApoConfig):
    from apo_core.loop import registry_for

    return registry_for(config)


def _who() -> str:
    import getpass

    return os.environ.get("APO_USER") or getpass.getuser()


def run_publish(config: ApoConfig, round_number: int, model: Path, method: str, parent: int | None,
                metrics_path: Path | None) -> None:
    import json

    from apo_core.data.round_dataset import workspace_for
    from apo_core.gate import summarise

    metrics = summarise(json.loads(metrics_path.read_text())) if metrics_path else {}
    workspace = workspace_for(config)
    try:
        version = workspace.version(round_number)
        dataset = {"md5": version.md5, "git_tag": version.tag, "git_commit": version.commit}
    except ApoError:
        dataset = {}
    manifest = _registry(config).publish(round_number, model, parent_round=parent, method=method, dataset=dataset,
                                         hyperparameters=config.train.model_dump(mode="json"), metrics=metrics)
    print(f"round {round_number} stored in {config.registry_url} ({len(manifest.files)} files, manifest last)")


def run_rounds(config: ApoConfig) -> None:
    registry = _registry(config)
    champion, _ = registry.champion()
    rounds = registry.rounds()
    if not rounds:
        print(f"no rounds in {config.registry_url}")
        return
    print(f"{'round':>5}  {'parent':>6}  {'method':<8}{'success':>9}  {'dataset':<20}  champion")
    for m in rounds:
        success = f"{m.metrics['success_rate']:.0%}" if "success_rate" in m.metrics else "-"
        mark = "  <- champion" if champion and champion["round"] == m.round else ""
        parent = "-" if m.parent_round is None else m.parent_round
        print(f"{m.round:>5}  {parent:>6}  {m.method:<8}{success:>9}  {m.dataset.get('git_tag', '-'):<20}{mark}")


def run_rollback(config: ApoConfig, round_number: int, reason: str) -> None:
    from apo_core.loop import rollback

    version = rollback(config, round_number, reason, who=_who())
    print(f"champion -> round {round_number}")
    if version is not None:
        print(f"datasets/ checked out at {version.tag} (md5 {version.md5})")


def run_audit(config: ApoConfig) -> None:
    import datetime

    events = _registry(config).audit_log()
    if not events:
        print("the audit log is empty")
    for e in events:
        when = datetime.datetime.fromtimestamp(e["at"], datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        success = e.get("metrics", {}).get("success_rate")
        rate = "-" if success is None else f"{success:.0%}"
        print(f"{when}  {e['action']:<8} {e['from_round']!s:>4} -> {e['to_round']!s:<4} by {e['who']:<12} "
              f"success {rate:<5} dataset {e.get('dataset', {}).get('git_tag', '-'):<20} {e['reason']}")


def _prefect_defaults() -> None:
    """Settings measured to be needed here (MEASURED_NOTES.md), unless the user set them."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def run_loop(config: ApoConfig, config_path: Path | None, *, rounds: int, method: str) -> list[dict]:
    """Bootstrap if needed, then run rounds until ``rounds`` loop rounds exist; print the table."""
    _prefect_defaults()
    from apo_core import loop, report
    from flows.lifelong import lifelong, next_round

    pending = max(0, rounds - (next_round(config) - 1))
    history = lifelong(str(config_path) if config_path else None, str(config.paths.workdir), pending, method)
    history = loop.round_history(config)
    print(report.text_table(history))
    print(f"plot: {config.paths.workdir / 'report' / 'rounds.png'}")
    return history


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # lerobot's per-episode "Map" bars
    try:
        config = load_config(args.config, _overrides(args))
        if args.command == "collect":
            run_collect(
                config,
                task=args.task,
                episodes=args.episodes,
                policy=args.policy,
                out=args.out,
                perturbation_name=args.perturbation,
                human=not args.no_human,
            )
        elif args.command == "train":
            run_train(config, method=args.method, data=args.data, reference=args.reference,
                      out=args.out, steps=args.steps, epochs=args.epochs)
        elif args.command == "evaluate":
            run_evaluate(config, model=args.model, tasks=args.task, suites=args.suite, episodes=args.episodes,
                         with_human=args.with_human, json_path=args.json, split=args.split)
        elif args.command == "dataset" and args.dataset_command == "build":
            run_dataset_build(config, args.round, args.data)
        elif args.command == "dataset" and args.dataset_command == "checkout":
            run_dataset_checkout(config, args.round)
        elif args.command == "lineage":
            run_lineage(config, args.round, args.json)
        elif args.command == "publish":
            run_publish(config, args.round, args.model, args.method, args.parent, args.metrics)
        elif args.command == "rounds":
            run_rounds(config)
        elif args.command == "rollback":
            run_rollback(config, args.round, args.reason)
        elif args.command == "audit":
            run_audit(config)
        elif args.command == "demo":
            run_loop(config, None, rounds=args.rounds, method="apo")
        elif args.command == "run":
            run_loop(config, args.config, rounds=args.rounds, method=args.method)
    except ApoError as exc:
        print(f"apo: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("apo: interrupted; finished episodes are on disk", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
