"""Per-step cost of the APO update vs plain NLL fine-tuning on the same batch, and the
latency of greedy action decoding at batch 1 and 16.

    .venv/bin/python benchmarks/step_cost.py [--repeats 30] [--threads 2]

APO's step does one forward over 2 candidates per observation (own action + mismatched
pair) sharing one encoded prefix; reference log-probs are precomputed, so no reference
forward is in the step.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import report  # noqa: E402

from apo_core.action_tokenizer import ActionTokenizer  # noqa: E402
from apo_core.objectives import action_logps, apo_loss, nll_loss  # noqa: E402
from apo_core.policy import ApoVlaConfig, ApoVlaPolicy, instruction_vocab  # noqa: E402
from apo_core.training import with_lora  # noqa: E402
from apo_core.config import TrainConfig  # noqa: E402


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = ApoVlaConfig(instruction_vocab=instruction_vocab(["push the puck to the goal"]))
    policy = ApoVlaPolicy(config, ActionTokenizer.fit(np.random.default_rng(0).normal(size=(100, 4))))
    model = with_lora(policy, TrainConfig())
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-5)
    rows = []
    for batch in (8, 16):
        g = torch.Generator().manual_seed(batch)
        pixels = policy.pixels(torch.randint(0, 256, (batch, 64, 64, 3), dtype=torch.uint8, generator=g))
        state = torch.randn(batch, config.state_dim, generator=g)
        ids = policy.instruction_ids(["push the puck to the goal"] * batch)
        bins = torch.randint(0, 255, (batch, 4), generator=g)
        pairs = torch.stack([bins, bins.roll(1, dims=0)], dim=1)
        ref = torch.randn(batch, 2)
        desirable = torch.arange(batch) % 4 != 0

        def nll_step():
            loss, _ = nll_loss(policy.token_logps(model(pixels, state, ids, bins), bins))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        def apo_step():
            output = model(pixels, state, ids, pairs)
            logps = policy.token_logps(output, pairs)
            l1 = (output.action_logprobs[:, 0].argmax(-1) - bins).abs().float().mean(-1)
            loss, _ = apo_loss(action_logps(logps[:, 0], desirable, 3), ref[:, 0], logps[:, 1].sum(-1), ref[:, 1],
                               desirable, l1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

        nll_ms, apo_ms = timed(nll_step, args.repeats), timed(apo_step, args.repeats)
        rows.append([f"train step, batch {batch}", round(nll_ms, 1), round(apo_ms, 1), round(apo_ms / nll_ms, 2)])
    policy.eval()
    for batch in (1, 16):
        pixels = policy.pixels(torch.randint(0, 256, (batch, 64, 64, 3), dtype=torch.uint8))
        state = torch.randn(batch, config.state_dim)
        ids = policy.instruction_ids(["push the puck to the goal"] * batch)
        decode_ms = timed(lambda: policy.generate(pixels, state, ids), args.repeats)
        rows.append([f"greedy decode, batch {batch}", round(decode_ms, 1), "", ""])
    report("step_cost", ["what", "NLL ms (or decode ms)", "APO ms", "APO / NLL"], rows, {"threads": args.threads})


if __name__ == "__main__":
    main()
