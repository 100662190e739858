"""Prefect flows and the `apo` CLI.

    lifelong.py   the flows: bootstrap, collect, learn, lifelong-round, lifelong, rollback
    cli/          `apo`: parsing and printing; the work is apo_core's

Every entry point comes through this package (the CLI, a deployment's flow run on a worker,
the benchmarks), so it quiets lerobot's per-episode "Map" progress bars here, once. lerobot
then tries to re-enable them and `datasets` warns that the variable wins: it should, so
that warning says nothing to the user either.
"""

import os
import warnings

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
warnings.filterwarnings("ignore", message="Cannot enable progress bars", category=UserWarning)
