"""`apo`: the command line of the lifelong-learning pipeline.

Every subcommand reads one validated config (``--config``, default configs/default.yaml).
User errors (bad config, unknown task, unwritable directory...) print one line and exit 2.
Heavy libraries (torch, mujoco, lerobot) are imported inside the commands that need them.
This module builds the parser and dispatches; the commands live in one module per group, each
parsing and printing only (the work is apo_core's): collect (collect, train, evaluate), datasets
(dataset, ingest, lineage), registry (publish, rounds, rollback, audit, reproduce, status), loop
(demo, run) and config (config). Everything it prints, tracebacks included, passes
apo_core.errors.mask_credentials: a key in a URL never reaches the terminal or a log.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from apo_core.config import load_with_sources, parse_assignments
from apo_core.errors import ApoError, mask_credentials
from flows.cli import collect, datasets, loop, registry
from flows.cli import config as config_commands

EXIT_USER_ERROR = 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="apo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None,
                        help="YAML config naming the keys it changes (every default: configs/default.yaml)")
    parser.add_argument("--workdir", type=Path, default=None, help="override paths.workdir")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="set any config key, e.g. --set train.lr=1e-4 (repeatable)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and Prefect's own console logs")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (collect, datasets, registry, loop, config_commands):  # the order of `apo --help`
        group.add_commands(commands)
    return parser


def _overrides(args: argparse.Namespace) -> dict:
    """The config keys set on the command line: ``--set`` assignments, then ``--workdir``."""
    overrides = parse_assignments(args.assignments)
    if args.workdir is not None:
        paths = overrides.get("paths")
        overrides["paths"] = {**(paths if isinstance(paths, dict) else {}), "workdir": str(args.workdir)}
    return overrides


def _os_error_line(error: OSError) -> str:
    """A disk, permission or missing-file failure as one line: what, where, what to check."""
    where = error.filename or "a file"
    hint = {28: " (the disk is full)", 13: " (check the permissions)", 30: " (the file system is read-only)"}
    return f"{where}: {error.strerror or error}{hint.get(error.errno, '')}"


class _Masked:
    """A text stream that writes each line through mask_credentials. Whole lines (or what is
    there at a flush), so a URL written in pieces is still masked."""

    def __init__(self, stream):
        self._stream, self._pending = stream, ""

    def write(self, text: str) -> int:
        self._pending += text
        cut = max(self._pending.rfind("\n"), self._pending.rfind("\r")) + 1
        if cut:
            self._stream.write(mask_credentials(self._pending[:cut]))
            self._pending = self._pending[cut:]
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._stream.write(mask_credentials(self._pending))
            self._pending = ""
        self._stream.flush()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    """`apo`; stdout and stderr are masked for as long as it runs (logging handlers and
    progress bars made meanwhile write through them too)."""
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Masked(sys.stdout), _Masked(sys.stderr)
    try:
        return _main(argv)
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = streams


def _main(argv: list[str] | None) -> int:
    args = _build_parser().parse_args(argv)
    if args.debug:
        os.environ["APO_DEBUG"] = "1"
    try:
        config, args.config_sources = load_with_sources(args.config, _overrides(args))
        args.handler(config, args)
    except ApoError as exc:
        print(mask_credentials(f"apo: error: {exc}"), file=sys.stderr)
        _traceback_if(args.debug)
        return EXIT_USER_ERROR
    except OSError as exc:
        print(mask_credentials(f"apo: error: {_os_error_line(exc)}"), file=sys.stderr)
        _traceback_if(args.debug)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("apo: interrupted; finished episodes are on disk", file=sys.stderr)
        return 130
    except Exception as exc:  # a defect: one line, the traceback on request
        _traceback_if(args.debug)
        print(mask_credentials(f"apo: internal error: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}"
                               f"{'' if args.debug else ' (run with --debug for the traceback)'}"), file=sys.stderr)
        return 1
    return 0


def _traceback_if(debug: bool) -> None:
    """The traceback of the exception being handled, masked: an exception's text (a botocore
    error, a chained cause) may hold the URL it was given, credentials and all."""
    if debug:
        import traceback

        print(mask_credentials(traceback.format_exc()), file=sys.stderr, end="")
