"""`apo dataset build`, `apo dataset checkout`, `apo ingest` and `apo lineage`: version a round's LeRobot dataset
(git + DVC), restore exactly the dataset of a round, take a recording made with LeRobot's own tools in as a round,
and show which data made a round and how.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apo_core.config import ApoConfig
from apo_core.errors import ApoError


def add_commands(commands) -> None:
    """Add dataset (build, checkout), ingest and lineage to the ``apo`` subparsers."""
    dataset = commands.add_parser("dataset", help="the versioned LeRobot dataset (git + DVC)")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    build = dataset_commands.add_parser("build", help="label + append episodes, then version round N")
    build.add_argument("round", type=int)
    build.add_argument("--data", type=Path, nargs="+", default=None,
                       help="folders holding episodes, at any depth (default: the demonstrations and the "
                            "interactions of rounds 1..N)")
    build.set_defaults(handler=_dataset_build)
    checkout = dataset_commands.add_parser("checkout", help="restore exactly the dataset of round N")
    checkout.add_argument("round", type=int)
    checkout.set_defaults(handler=_dataset_checkout)

    ingest = commands.add_parser("ingest", help="take a LeRobot v3 recording in as round N's interactions")
    ingest.add_argument("source", type=Path, help="the recording's local dataset directory (meta/info.json)")
    ingest.add_argument("--round", dest="round_number", type=int, required=True)
    ingest.add_argument("--robot", default="recorded", help="the name its episodes are filed under")
    ingest.add_argument("--task", default=None, help="the world's task it shows (default: the first loop task)")
    ingest.add_argument("--mapping", type=Path, default=None,
                        help="YAML: which recorded feature is image, state, environment_state, action, "
                             "intervention, reward, success")
    ingest.set_defaults(handler=lambda config, args: run_ingest(config, args.source, args.round_number, args.robot,
                                                                args.task, args.mapping))
    lineage = commands.add_parser("lineage", help="which episodes, labelled how, made a round's dataset")
    lineage.add_argument("round", type=int, nargs="?", default=None)
    lineage.add_argument("--json", action="store_true", help="machine-readable output")
    lineage.set_defaults(handler=_lineage)


def _dataset_build(config: ApoConfig, args: argparse.Namespace) -> None:
    run_dataset_build(config, args.round, args.data)


def _dataset_checkout(config: ApoConfig, args: argparse.Namespace) -> None:
    run_dataset_checkout(config, args.round)


def _lineage(config: ApoConfig, args: argparse.Namespace) -> None:
    run_lineage(config, args.round, args.json)


def run_dataset_build(config: ApoConfig, round_number: int, data: list[Path] | None) -> None:
    from apo_core.data.round_dataset import version_round
    from apo_core.recording.store import episode_dirs_under
    from apo_core.workdir import dataset_sources, episodes_dir

    # A folder given that holds no episodes at any depth goes as it is: the build names it.
    sources = [d for root in data for d in (episode_dirs_under(root) or [root])] if data else dataset_sources(
        config, round_number, config.env.tasks)
    if not sources:
        raise ApoError(f"no episodes under {episodes_dir(config)}: record some first (apo collect, or apo demo)")
    version, summary, record = version_round(config, round_number, sources, resume=False)
    added = f"{len(summary.episodes_added)} episodes added"
    print(f"dataset round {round_number}: {added}; md5 {version.md5}, tag {version.tag}, commit {version.commit[:10]}")
    print("  labels: " + ", ".join(f"{name} {count}" for name, count in record["label_counts"].items()))


def run_dataset_checkout(config: ApoConfig, round_number: int) -> None:
    from apo_core.data.restore import checkout_round
    from apo_core.data.round_dataset import workspace_for

    version = checkout_round(workspace_for(config), round_number)
    print(f"datasets/ is now round {round_number}: md5 {version.md5} ({version.tag}), every file verified")


def run_lineage(config: ApoConfig, round_number: int | None, as_json: bool) -> None:
    """Per round: the dataset (tag, md5, episodes per source and label) and, once published,
    the model's parent, method, code commit and config hash; one round's episodes in full."""
    import json

    from apo_core.data.lineage import rounds_with_lineage
    from apo_core.loop.provenance import round_provenance

    root = config.dataset_workspace
    rounds = [round_number] if round_number is not None else rounds_with_lineage(root)
    if not rounds:
        raise ApoError(f"{root}: no lineage records yet; run `apo dataset build` first")
    rows = [round_provenance(config, r) for r in rounds]
    if as_json:
        print(json.dumps(rows if round_number is None else rows[0], indent=2))
        return
    print(f"{'round':>5}  {'dataset':<20}{'md5':<38}{'episodes':<26}{'parent':>6}  {'method':<7}{'code':<13}"
          f"{'config':<17}labels")
    for r in rows:
        sources = ", ".join(f"{k} {v}" for k, v in r["episodes_per_source"].items())
        labels = ", ".join(f"{k} {v}" for k, v in r["steps_per_label"].items() if v)
        parent = "–" if r["parent_round"] is None else r["parent_round"]
        print(f"{r['round']:>5}  {r['dataset_tag']:<20}{r['dataset_md5']:<38}{sources:<26}{parent!s:>6}  "
              f"{r['method'] or '–':<7}{(r['code_commit'] or '–')[:12]:<13}{r['config_hash'] or '–':<17}{labels}")
    if round_number is not None:
        _print_episodes(rows[0])


def _print_episodes(row: dict) -> None:
    """One round's episodes, and which of them its update read (the replay of earlier rounds named)."""
    read = row.get("update_read")
    if read is not None:
        replayed = ", ".join(f"round {r}: {n}" for r, n in read["replayed"].items()) or "none"
        print(f"\nthe update read {read['episodes']} episodes: {sum(read['demonstrations'].values())} "
              f"demonstrations, {sum(read['current'].values())} of round {row['round']}, replayed {replayed}")
    chosen = {e: group for group, ids in (read or {}).get("episode_ids", {}).items() for e in ids}
    print(f"\n{'episode':<48}{'round':>6}  {'source':<12}{'read as':<15}{'world':<36}labels")
    for e in row["lineage"]["episodes"]:
        used = chosen.get(e["episode_id"], "all" if read is None else "–")
        print(f"{e['episode_id']:<48}{e['round']:>6}  {e['source']:<12}{used:<15}{e.get('world') or 'as built':<36}"
              + ", ".join(f"{k} {v}" for k, v in e["labels"].items()))


def run_ingest(config: ApoConfig, source: Path, round_number: int, robot: str, task: str | None,
               mapping: Path | None) -> None:
    from apo_core.data.ingest import ingest, read_mapping
    from apo_core.loop.layout import loop_tasks

    version, summary, record = ingest(config, source, round_number, robot=robot, task=task or loop_tasks(config)[0],
                                      mapping=read_mapping(mapping))
    print(f"dataset round {round_number}: {len(summary.episodes_added)} recorded episodes of {source} taken in as "
          f"robot {robot}; md5 {version.md5}, tag {version.tag}")
    print("  labels: " + ", ".join(f"{name} {count}" for name, count in record["label_counts"].items()))
