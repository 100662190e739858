"""`apo publish`, `apo rounds`, `apo rollback`, `apo audit`, `apo reproduce` and `apo status`: store a trained
model as an immutable round in the registry, list the rounds and the champion, re-point the champion to an earlier
round, print the audit log, retrain a round from what is stored, and show the loop's state at a glance.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from apo_core.config import ApoConfig


def add_commands(commands) -> None:
    """Add publish, rounds, rollback, audit, reproduce and status to the ``apo`` subparsers."""
    publish = commands.add_parser("publish", help="store a trained model as an immutable round")
    publish.add_argument("round", type=int)
    publish.add_argument("--model", type=Path, required=True)
    publish.add_argument("--method", required=True)
    publish.add_argument("--parent", type=int, default=None, help="the round it was trained from")
    publish.add_argument("--metrics", type=Path, default=None, help="`apo evaluate --json` output")
    publish.set_defaults(handler=_publish)

    rounds = commands.add_parser("rounds", help="list the stored rounds and the champion")
    rounds.set_defaults(handler=_rounds)
    rollback = commands.add_parser("rollback", help="re-point the champion to an earlier round (+ its dataset)")
    rollback.add_argument("round", type=int)
    rollback.add_argument("--reason", required=True)
    rollback.set_defaults(handler=_rollback)
    audit = commands.add_parser("audit", help="print the promote / reject / rollback log")
    audit.set_defaults(handler=_audit)
    reproduce = commands.add_parser("reproduce", help="retrain round N from its versioned dataset and compare")
    reproduce.add_argument("round", type=int)
    reproduce.add_argument("--json", action="store_true", help="machine-readable output")
    reproduce.set_defaults(handler=lambda config, args: run_reproduce(config, args.round, args.json))
    status = commands.add_parser("status", help="champion, last decision, interactions until the next round")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=lambda config, args: run_status(config, args.json))


def _publish(config: ApoConfig, args: argparse.Namespace) -> None:
    run_publish(config, args.round, args.model, args.method, args.parent, args.metrics)


def _rounds(config: ApoConfig, args: argparse.Namespace) -> None:
    run_rounds(config)


def _rollback(config: ApoConfig, args: argparse.Namespace) -> None:
    run_rollback(config, args.round, args.reason)


def _audit(config: ApoConfig, args: argparse.Namespace) -> None:
    run_audit(config)


def _registry(config: ApoConfig):
    from apo_core.registry.store import registry_for

    return registry_for(config)


def _who() -> str:
    import getpass

    return os.environ.get("APO_USER") or getpass.getuser()


def run_publish(config: ApoConfig, round_number: int, model: Path, method: str, parent: int | None,
                metrics_path: Path | None) -> None:
    import json

    from apo_core.loop.learner import publish_model

    evaluation = json.loads(metrics_path.read_text()) if metrics_path else None
    manifest = publish_model(config, round_number, model, method=method, parent_round=parent, evaluation=evaluation)
    print(f"round {round_number} stored in {config.registry_url} ({len(manifest.files)} files, manifest last)")


def run_rounds(config: ApoConfig) -> None:
    from apo_core.registry.store import CorruptPointer

    registry = _registry(config)
    try:
        champion, _ = registry.champion()
    except CorruptPointer as corrupt:  # still list the rounds: the repair needs them
        champion = None
        print(f"apo: warning: {corrupt}")
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
    from apo_core.loop.learner import rollback

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
        reason = e["reason"] if e["action"] != "aborted" else f"{e['reason']} (the move {e['aborts']} did not happen)"
        print(f"{when}  {e['action']:<8} {e['from_round']!s:>4} -> {e['to_round']!s:<4} by {e['who']:<12} "
              f"success {rate:<5} dataset {e.get('dataset', {}).get('git_tag', '-'):<20} {reason}")


def run_reproduce(config: ApoConfig, round_number: int, as_json: bool) -> None:
    """Retrain round N from what is stored and compare weights and evaluation outcomes."""
    import json
    import sys

    from apo_core.loop.reproduce import reproduce, verdict

    result = reproduce(config, round_number, on_notice=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2) if as_json else verdict(result))


def run_status(config: ApoConfig, as_json: bool) -> None:
    """The operator's view of the loop (apo_core/loop/status.py), as text or JSON."""
    import datetime
    import json

    from apo_core.loop.status import loop_status

    status = loop_status(config)
    if as_json:
        print(json.dumps(status, indent=2))
        return

    def when(stamp: float | None) -> str:
        return "-" if stamp is None else datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    champion, last = status["champion"], status["last_decision"]
    print(f"registry       {status['registry']}")
    if champion is None:
        print("champion       no champion yet: run the bootstrap flow (apo demo / apo run)")
    else:
        rate = "-" if champion["success_rate"] is None else f"{champion['success_rate']:.0%}"
        print(f"champion       round {champion['round']} since {when(champion['since'])} (by {champion['set_by']}), "
              f"success {rate}, dataset {champion['dataset'].get('git_tag', '-')} md5 {champion['dataset'].get('md5', '-')}")
    if last is not None:
        print(f"last decision  {last['action']} round {last['round']} at {when(last['at'])}: {last['reason']}")
    if status["unfinished_move"] is not None:
        move = status["unfinished_move"]
        print(f"unfinished     {move['action']} to round {move['round']} at {when(move['at'])} is logged but the "
              f"champion did not move (a crash); the next round or `apo rollback` completes it")
    print(f"next           round {status['pending_round']}: {status['interactions_collected']} of "
          f"{status['interactions_per_round']} interactions collected, {status['interactions_until_next_round']} to go")
