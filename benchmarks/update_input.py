"""The update's input: a round's training steps loaded from its episode files against from its
versioned dataset (what the loop trains on), the same update timed in turn on each.

    .venv/bin/python benchmarks/update_input.py --workdir .apo [--round 1] [--pairs 2]

Needs a workdir with rounds (e.g. `make demo`'s) whose workspace holds dataset round N
(`apo dataset checkout N`). One torch thread, as the update runs on a Ray worker. The two
inputs must give the same weights, bit for bit: the check is printed beside the times.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

# Run as `python benchmarks/update_input.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402


def _digest(policy) -> str:
    digest = hashlib.sha256()
    for _, tensor in sorted(policy.state_dict().items()):
        digest.update(tensor.detach().numpy().tobytes())
    return digest.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(".apo"))
    parser.add_argument("--round", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    from apo_core.config import load_config
    from apo_core.data.round_dataset import workspace_for
    from apo_core.data.steps import load_steps
    from apo_core.data.training_steps import steps_from_dataset
    from apo_core.loop.layout import loop_tasks
    from apo_core.loop.update import train_policy
    from apo_core.policy import load_policy
    from apo_core.workdir import dataset_sources, model_dir

    config = load_config(None, {"paths": {"workdir": str(args.workdir)}, "train": {"threads": 1}})
    workspace = workspace_for(config)
    version = workspace.version(args.round)
    if workspace.current_md5() != version.md5:
        raise SystemExit(f"{workspace.root}: check out dataset round {args.round} first (apo dataset checkout)")
    reference_dir = model_dir(config, args.round - 1)

    def load(source: str, reference):
        if source == "episodes":
            return load_steps(dataset_sources(config, args.round, loop_tasks(config)), config.labels,
                              reference.action_normalizer)
        return steps_from_dataset(workspace.dataset_root, images=reference.needs_image, md5=version.md5)

    rows = []
    for pair in range(args.pairs):
        for source in ("episodes", "dataset") if pair % 2 == 0 else ("dataset", "episodes"):
            reference = load_policy(reference_dir)
            start = time.perf_counter()
            steps = load(source, reference)
            loaded = time.perf_counter()
            policy = train_policy(config, steps, "apo", args.workdir / "bench-update.work", reference=reference)
            rows.append([pair, source, round(loaded - start, 3), round(time.perf_counter() - start, 1), len(steps),
                         _digest(policy)])
            print(rows[-1], flush=True)
    report("update_input", ["pair", "steps from", "load s", "update s", "rows", "weights sha256"], rows,
           {"workdir": str(args.workdir), "round": args.round, "dataset": version.tag})


if __name__ == "__main__":
    main()
