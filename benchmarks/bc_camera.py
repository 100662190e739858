"""The positive control of a camera policy: does behaviour cloning that must find the object
in the pixels reach a useful base, and what does an action chunk cost and give?

    .venv/bin/python benchmarks/bc_camera.py [--demos 5 20 50] [--image-sizes 64 84]
        [--chunks 1] [--cameras corner2:45] [--episodes 100] [--jobs 2] [--name bc-camera]

Every cell (camera × image size × demonstrations × chunk size H) behaviour-clones a fresh
camera policy, that of ``--config`` (default: the defaults' camera policy, the image and
the hand, no object poses; ``--set`` changes it, e.g. ``policy.use_image=false`` for a blind
reference) on that many scripted demonstrations of the config's first task
(``--set 'env.tasks=[drawer-open]'``), then plays it alone on ``--episodes`` VALIDATION
seeds (settings are chosen here; test seeds are for reported loop results). A camera is
``name`` or ``name:fovy``.

Prints per cell: success with its Wilson 95% interval, the BC losses at the end,
training seconds, and evaluation episodes/s per core (one torch thread, the world
rendering only when the policy decides). Writes benchmarks/results/<name>.json. Cells run
``--jobs`` at a time in fresh processes, one torch thread each.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

# Run as `python benchmarks/bc_camera.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, expert_demos, job_pool, labelled, report, score, seeded_config  # noqa: E402


def cell_settings(camera: str, image_size: int, chunk: int) -> dict:
    name, _, fovy = camera.partition(":")
    return {"env": {"camera": name, "camera_fovy": float(fovy) if fovy else None, "image_size": image_size},
            "policy": {"chunk_size": chunk}}


def cell_job(config_path: Path | None, settings: dict, camera: str, image_size: int, demos: int, chunk: int,
             episodes: int, work: Path) -> dict:
    """Behaviour cloning on ``demos`` demonstrations, scored on the validation seeds."""
    import torch

    from apo_core.loop.update import train_policy

    torch.set_num_threads(1)
    # the cell's camera, size and H, then --set over them (it may make the policy blind or privileged)
    config = seeded_config(config_path, 0, settings, cell_settings(camera, image_size, chunk))
    task = config.env.tasks[0]
    episodes_played = expert_demos(config, task, demos)
    losses = {}
    start = time.perf_counter()
    policy = train_policy(config, labelled(config, episodes_played), "bc",
                          work / f"{camera}-{image_size}-{demos}-{chunk}",
                          on_step=lambda step, total, metrics: losses.update(metrics))
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    validation = score(config, policy, task, "validation", episodes)
    eval_seconds = time.perf_counter() - start
    result = {"task": task, "camera": camera, "image_size": image_size, "demos": demos, "chunk_size": chunk,
              "demo_successes": sum(e.meta.success for e in episodes_played), "losses": losses,
              "train_seconds": train_seconds, "eval_seconds": eval_seconds, "validation": validation}
    print(f"{camera} {image_size}px {demos} demos H={chunk}: validation success {validation['success_rate']:.0%} "
          f"(train {train_seconds:.0f}s, eval {eval_seconds:.0f}s)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--image-sizes", type=int, nargs="+", default=[64, 84])
    parser.add_argument("--chunks", type=int, nargs="+", default=[1])
    parser.add_argument("--cameras", nargs="+", default=["corner2:45"])
    parser.add_argument("--episodes", type=int, default=100, help="validation episodes per cell")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--config", type=Path, help="YAML over the defaults")
    parser.add_argument("--name", default="bc-camera")
    parser.add_argument("--set", dest="settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every cell, e.g. train.bc_steps=4000")
    args = parser.parse_args()
    from apo_core.config import parse_assignments

    settings = parse_assignments(args.settings)

    work = RESULTS / f"{args.name}-work"
    cells = list(itertools.product(args.cameras, args.image_sizes, args.demos, args.chunks))
    started = time.perf_counter()
    with job_pool(args.jobs) as pool:
        futures = [pool.submit(cell_job, args.config, settings, *cell, args.episodes, work) for cell in cells]
        results = [future.result() for future in futures]
    rows = []
    for r in results:
        v = r["validation"]
        rows.append([r["camera"], r["image_size"], r["demos"], r["chunk_size"],
                     f"{v['success_rate']:.0%} [{v['ci95_low']:.0%}, {v['ci95_high']:.0%}]",
                     *(round(r["losses"].get(name, float("nan")), 3) for name in ("nll", "aux_mse", "object_mse")),
                     round(r["train_seconds"]), round(args.episodes / r["eval_seconds"], 2)])
    report(args.name, ["camera", "px", "demos", "H", f"success ({args.episodes} val seeds)", "bc nll", "aux mse",
                       "object mse", "train s", "eval eps/s/core"], rows,
           {"command": " ".join(sys.argv), "wall_seconds": time.perf_counter() - started, "settings": settings,
            "cells": results})


if __name__ == "__main__":
    main()
