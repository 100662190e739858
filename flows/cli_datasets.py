"""`apo dataset build`, `apo dataset checkout` and `apo lineage`: version a round's LeRobot dataset (git + DVC),
restore exactly the dataset of a round, and show which episodes, labelled how, made a round's dataset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from apo_core.config import ApoConfig
from apo_core.errors import ApoError


def add_commands(commands) -> None:
    """Add dataset (build, checkout) and lineage to the ``apo`` subparsers."""
    dataset = commands.add_parser("dataset", help="the versioned LeRobot dataset (git + DVC)")
    dataset_commands = dataset.add_subparsers(dest="dataset_command", required=True)
    build = dataset_commands.add_parser("build", help="label + append episodes, then version round N")
    build.add_argument("round", type=int)
    build.add_argument("--data", type=Path, nargs="+", default=None,
                       help="episode directories (default: expert demos + interactions of rounds 1..N)")
    build.set_defaults(handler=_dataset_build)
    checkout = dataset_commands.add_parser("checkout", help="restore exactly the dataset of round N")
    checkout.add_argument("round", type=int)
    checkout.set_defaults(handler=_dataset_checkout)

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
    from apo_core.loop.layout import dataset_sources

    sources = data or dataset_sources(config, round_number, config.env.tasks)
    if not sources:
        raise ApoError(f"no episode directories under {config.paths.episodes}; run `apo collect` first")
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
