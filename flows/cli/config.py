"""`apo config show`, `apo config defaults` and `apo config docs`: the effective config of a run and where each
value came from, and the generated defaults file and reference page (`make config-docs` writes both).
"""

from __future__ import annotations

import argparse

from apo_core.config import ApoConfig


def add_commands(commands) -> None:
    """Add config (show, defaults, docs) to the ``apo`` subparsers."""
    config = commands.add_parser("config", help="the effective config and where each value came from")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser("show", help="every effective value: default, your file or the command line")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_show)
    defaults = config_commands.add_parser("defaults", help="print every default as commented YAML "
                                          "(configs/default.yaml)")
    defaults.set_defaults(handler=lambda _config, _args: _print_generated("default_yaml"))
    docs = config_commands.add_parser("docs", help="print the configuration reference (docs/configuration.md)")
    docs.set_defaults(handler=lambda _config, _args: _print_generated("configuration_markdown"))


def _show(config: ApoConfig, args: argparse.Namespace) -> None:
    from apo_core.config.render import show_json, show_text
    from apo_core.errors import mask_credentials

    print(mask_credentials((show_json if args.json else show_text)(config, args.config_sources)))


def _print_generated(name: str) -> None:
    from apo_core.config import render

    print(getattr(render, name)(), end="")
