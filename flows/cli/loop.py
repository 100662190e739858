"""`apo demo` and `apo run`: the lifelong loop through the Prefect flows of `flows.lifelong` (bootstrap if needed,
then rounds until N loop rounds exist), on the embedded defaults with an ephemeral Prefect server (demo) or with
your config and method (run); both print the per-round table and the plot's path.
"""

from __future__ import annotations

import argparse
import os

from apo_core.config import UPDATE_METHODS, ApoConfig


def add_commands(commands) -> None:
    """Add demo and run to the ``apo`` subparsers."""
    demo = commands.add_parser("demo", help="bootstrap + 2 APO rounds on the embedded defaults (ephemeral Prefect)")
    demo.add_argument("--rounds", type=int, default=2)
    demo.set_defaults(handler=_demo)
    run = commands.add_parser("run", help="the loop with your config (S3, a Prefect server via PREFECT_API_URL, ...)")
    run.add_argument("--rounds", type=int, default=3, help="run until this many loop rounds exist")
    run.add_argument("--method", choices=UPDATE_METHODS, default="apo")
    run.set_defaults(handler=_run)


def _demo(config: ApoConfig, args: argparse.Namespace) -> None:
    run_loop(config, rounds=args.rounds, method="apo")


def _run(config: ApoConfig, args: argparse.Namespace) -> None:
    run_loop(config, rounds=args.rounds, method=args.method)


def prefect_defaults() -> None:
    """Prefect settings a 2-core machine needs (docs/deployment.md §7), unless the user set them.

    Every flow and task logs at INFO to the Prefect API (the UI's Logs tab reads like the
    terminal); the terminal keeps to `apo`'s own lines: Prefect's console copy of its logs
    only with --debug (a failed step is reported as one line by `apo` itself).
    """
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    if not os.environ.get("APO_DEBUG"):
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")


def run_loop(config: ApoConfig, *, rounds: int, method: str) -> list[dict]:
    """Bootstrap if needed, then run rounds until ``rounds`` loop rounds exist; print the table."""
    prefect_defaults()
    from apo_core.loop import report
    from apo_core.workdir import next_round, report_plot, round_history
    from flows.lifelong import lifelong

    pending = max(0, rounds - (next_round(config) - 1))
    lifelong(rounds=pending, method=method, config=config)
    history = round_history(config)
    print(report.text_table(history))
    print(f"plot: {report_plot(config)}")
    return history
