"""Throughput of one APO update for each policy implementation and size: samples/s, action
tokens/s and, on a GPU, the model FLOPs utilisation.

    .venv/bin/python benchmarks/train_throughput.py [--size tiny small base] [--kind apo-vla paligemma-fast]
        [--steps 30] [--batch-size 32] [--device auto|cpu|cuda]

Each row builds the policy from config at that size (no download), behaviour-cloning
statistics from synthetic demonstrations, and runs the real APO trainer
(:class:`apo_core.training.apo.APOTrainer`: the reference's log-probs once, then every
step's forward with the mismatched pair, the loss, backward and Adam) for ``--steps``
steps; the first fifth of the steps is warm-up and not timed. On CUDA the trainer runs in
bf16 autocast. MFU = 6 · parameters · tokens per second / the GPU's dense bf16 peak (the
sequence's tokens: prefix + action tokens). On a 2-core CPU run ``--size tiny``; on a GPU
machine the whole table is one command (docs: benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# Run as `python benchmarks/train_throughput.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

from apo_core.config import load_config  # noqa: E402
from apo_core.data.steps import Steps  # noqa: E402
from apo_core.labels import ActedBy, Label  # noqa: E402

# Sizes from config: (vision width, vision layers, decoder width, decoder layers, heads, MLP multiple)
SIZES = {"tiny": None, "small": (384, 6, 768, 12, 12, 4), "base": (768, 12, 2048, 18, 8, 8)}
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}


def synthetic_steps(rows: int = 512, image_size: int = 64) -> Steps:
    """Smooth actions in episodes of 32 steps; a quarter each expert, autonomous, human, failure-prone."""
    rng = np.random.default_rng(0)
    time_in_episode = (np.arange(rows) % 32)[:, None] / 32
    actions = np.sin(2 * np.pi * (time_in_episode + rng.uniform(0, 1, (rows // 32, 4)).repeat(32, axis=0)))
    quarter = rows // 4
    acted_by = np.repeat([ActedBy.EXPERT_DEMO, ActedBy.POLICY, ActedBy.HUMAN, ActedBy.POLICY], quarter)
    labels = np.repeat([Label.AUTONOMOUS, Label.AUTONOMOUS, Label.HUMAN, Label.FAILURE_PRONE], quarter)
    return Steps(images=rng.integers(0, 256, (rows, image_size, image_size, 3), dtype=np.uint8),
                 proprio=rng.normal(size=(rows, 4)).astype(np.float32),
                 environment_state=rng.normal(size=(rows, 17)).astype(np.float32),
                 actions=actions.astype(np.float32), policy_actions=np.full((rows, 4), np.nan, dtype=np.float32),
                 acted_by=acted_by.astype(np.int8), labels=labels.astype(np.int8),
                 instructions=np.array(["push the puck to the goal"] * rows, dtype=object),
                 episode_ids=np.repeat([f"e{i}" for i in range(rows // 32)], 32).astype(object),
                 success=np.ones(rows, dtype=bool))


def build(kind: str, size: str, steps: Steps, chunk_size: int):
    """A fresh policy of ``kind`` at ``size`` (the tiny one is the config's defaults)."""
    from apo_core.policy import POLICY_KINDS

    overrides: dict = {"kind": kind, "use_image": True, "state_inputs": "proprio+goal",
                       "chunk_size": chunk_size if kind == "paligemma-fast" else 1}
    if SIZES[size] is not None:
        vision, vision_layers, width, layers, _, _ = SIZES[size]
        overrides.update(vision_hidden_size=vision, vision_layers=vision_layers, hidden_size=width,
                         decoder_layers=layers)
    settings = load_config(None, {"policy": overrides}).policy
    demos = steps.select(steps.acted_by == ActedBy.EXPERT_DEMO)
    policy = POLICY_KINDS[kind].build(settings, demos, image_size=64, action_dim=4, gripper_dim=3, seed=0)
    if SIZES[size] is not None:  # widen heads and MLPs as real models have them
        policy = _resized(policy, size)
    return policy


def _resized(policy, size: str):
    from dataclasses import replace

    vision, _, width, _, heads, multiple = SIZES[size]
    config = policy.config
    if policy.kind == "paligemma-fast":
        config = replace(config, vision_heads=max(1, vision // 64), vision_intermediate_size=4 * vision,
                         text_heads=heads, head_dim=width // heads, text_intermediate_size=multiple * width)
        return type(policy)(config, policy.normalizer, policy.fast)
    config = replace(config, vision_heads=max(1, vision // 64), vision_intermediate_size=4 * vision,
                     decoder_heads=heads, decoder_intermediate_size=multiple * width)
    return type(policy)(config, policy.action_tokenizer)


def measure(policy, steps: Steps, args, device: torch.device) -> dict:
    """Time the APO trainer's steps after a warm-up fifth."""
    from apo_core.training.apo import APOTrainer

    config = load_config(None, {"train": {"batch_size": args.batch_size, "device": device.type, "threads": args.threads,
                                          "checkpoint_every": 10**6, "epochs": 1.0}}).train
    trainer = APOTrainer(policy, steps, config)
    total = len(trainer.batches())
    epochs = args.steps / total
    trainer = APOTrainer(policy, steps, config.model_copy(update={"epochs": epochs}))
    stamps: list[float] = []

    def on_step(step: int, _total: int, _metrics: dict) -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as work:
        trainer.train(Path(work), on_step=on_step)
    warm = max(1, len(stamps) // 5)
    seconds = (stamps[-1] - stamps[warm - 1]) / (len(stamps) - warm)
    action_tokens = policy.encode_actions(trainer.chunks(steps.actions))
    per_sample = float(action_tokens.mask.sum(1).float().mean()) if action_tokens.mask is not None \
        else action_tokens.ids.shape[1]
    return {"ms_per_step": 1000 * seconds, "samples_per_s": args.batch_size / seconds,
            "action_tokens_per_s": args.batch_size * per_sample / seconds,
            "sequence_tokens": prefix_tokens(policy) + per_sample}


def prefix_tokens(policy) -> int:
    """Tokens before the action: image patches, state, instruction, [BOA] (and [BOS])."""
    config = policy.config
    if policy.kind == "paligemma-fast":
        return config.prefix_length
    return config.image_tokens + 1 + config.max_instruction_tokens + 1


def mfu(parameters: int, sequence_tokens: float, samples_per_s: float, device: torch.device) -> str:
    if device.type != "cuda":
        return "-"
    name = torch.cuda.get_device_name(device)
    peak = next((tflops for gpu, tflops in PEAK_BF16_TFLOPS.items() if gpu in name), None)
    if peak is None:
        return f"? ({name})"
    # the APO step: forward + backward of the own pass (6 N per token) + the mismatched pair's forward (2 N)
    return f"{8 * parameters * sequence_tokens * samples_per_s / (peak * 1e12):.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", nargs="+", choices=list(SIZES), default=["tiny"])
    parser.add_argument("--kind", nargs="+", choices=["apo-vla", "paligemma-fast"],
                        default=["apo-vla", "paligemma-fast"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk-size", type=int, default=4, help="paligemma-fast's action chunk")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = parser.parse_args()
    from apo_core.training import resolve_device

    device = resolve_device(args.device)
    steps = synthetic_steps()
    rows = []
    for size in args.size:
        for kind in args.kind:
            policy = build(kind, size, steps, args.chunk_size)
            parameters = sum(p.numel() for p in policy.parameters())
            result = measure(policy, steps, args, device)
            rows.append([kind, size, f"{parameters / 1e6:.1f}M", args.batch_size, f"{result['ms_per_step']:.1f}",
                         f"{result['samples_per_s']:.1f}", f"{result['action_tokens_per_s']:.0f}",
                         mfu(parameters, result["sequence_tokens"], result["samples_per_s"], device)])
            print("  ".join(map(str, rows[-1])), flush=True)
    report("train_throughput", ["policy", "size", "parameters", "batch", "ms/step", "samples/s", "action tokens/s",
                                "MFU"], rows,
           {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else
            "cpu", "threads": args.threads, "steps": args.steps, "chunk_size": args.chunk_size})


if __name__ == "__main__":
    main()
