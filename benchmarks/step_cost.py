"""Per-step cost of the APO update vs plain NLL fine-tuning on the same batch, and the
latency of greedy action decoding, for the policy of the embedded defaults.

    .venv/bin/python benchmarks/step_cost.py [--repeats 200] [--threads 1]

APO's step is the trainer's: the sample's own action with a graph and the mismatched pair
without one, on the own pass's cached prefix (``forward_with_mismatched``); reference
log-probs are precomputed, so no reference forward is in the step. For comparison, the
step as it was before that (a second full pass for the mismatched pair) is timed too.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import report  # noqa: E402

from apo_core.config import load_config  # noqa: E402
from apo_core.data.steps import Steps  # noqa: E402
from apo_core.labels import ActedBy, Label  # noqa: E402
from apo_core.objectives import action_logps, apo_loss, greedy_l1_error, nll_loss  # noqa: E402
from apo_core.policy import ApoVlaPolicy  # noqa: E402
from apo_core.training.bc import build_policy  # noqa: E402

INSTRUCTION = "push the puck to the goal"


def timed(fns, repeats: int, rounds: int = 5) -> list[float]:
    """Median ms per call of each function, timed in turn over ``rounds`` rounds: this
    machine's speed drifts within minutes, so variants are never timed one after another."""
    for fn in fns:  # warm-up
        for _ in range(5):
            fn()
    samples = [[] for _ in fns]
    for _ in range(rounds):
        for fn, times in zip(fns, samples):
            start = time.perf_counter()
            for _ in range(max(1, repeats // rounds)):
                fn()
            times.append((time.perf_counter() - start) / max(1, repeats // rounds) * 1000)
    return [float(np.median(times)) for times in samples]


def default_policy() -> ApoVlaPolicy:
    """A fresh policy as the bootstrap builds it for the embedded defaults (``policy:`` in
    configs/default.yaml), its statistics from random stand-in expert steps."""
    config, rows = load_config(), 100
    rng = np.random.default_rng(0)
    expert_steps = Steps(
        images=np.zeros((rows, config.env.image_size, config.env.image_size, 3), dtype=np.uint8),
        proprio=rng.normal(size=(rows, 4)).astype(np.float32),
        environment_state=rng.normal(size=(rows, 17)).astype(np.float32),
        actions=rng.normal(size=(rows, 4)).astype(np.float32),
        policy_actions=np.full((rows, 4), np.nan, dtype=np.float32),
        acted_by=np.full(rows, ActedBy.EXPERT_DEMO, dtype=np.int8),
        labels=np.full(rows, Label.HUMAN, dtype=np.int8),
        instructions=np.array([INSTRUCTION] * rows, dtype=object),
        episode_ids=np.array(["stand-in"] * rows, dtype=object),
        success=np.ones(rows, dtype=bool),
    )
    return build_policy(expert_steps, config.policy, image_size=config.env.image_size, action_dim=4, gripper_dim=3,
                        seed=0)


def observations(policy: ApoVlaPolicy, batch: int, generator: torch.Generator):
    """Random policy inputs for ``batch`` observations: pixels (None without a vision tower),
    state, instruction ids."""
    size = policy.config.image_size
    pixels = (policy.pixels(torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=generator))
              if policy.config.use_image else None)
    state = torch.randn(batch, policy.config.state_dim, generator=generator)
    return pixels, state, policy.instruction_ids([INSTRUCTION] * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = default_policy().train()
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-4, fused=True)
    centers = torch.from_numpy(policy.action_tokenizer.centers.astype(np.float32))
    rows = []
    for batch in (16, 32):
        g = torch.Generator().manual_seed(batch)
        pixels, state, ids = observations(policy, batch, g)
        bins = torch.randint(0, 255, (batch, 4), generator=g)
        mismatched = bins.roll(1, dims=0)
        ref, ref_mismatched = torch.randn(batch, generator=g), torch.randn(batch, generator=g)
        target = torch.randn(batch, 4, generator=g)
        desirable = torch.arange(batch) % 4 != 0

        def optimise(loss: torch.Tensor) -> None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(policy.parameters()), 1.0)
            optimizer.step()

        def nll_step():
            optimise(nll_loss(policy.token_logps(policy(pixels, state, ids, bins), bins))[0])

        def apo(output, mismatched_logps):
            own = policy.token_logps(output, bins.unsqueeze(1))[:, 0]
            loss, _ = apo_loss(action_logps(own, desirable, 3), ref, mismatched_logps.sum(-1), ref_mismatched,
                               desirable, greedy_l1_error(output.action_logprobs[:, 0], centers, target))
            optimise(loss + nll_loss(own[desirable])[0])

        def apo_step():
            apo(*policy.forward_with_mismatched(pixels, state, ids, bins, mismatched))

        def apo_step_two_passes():
            output = policy(pixels, state, ids, bins)
            with torch.no_grad():
                mismatched_logps = policy.token_logps(policy(pixels, state, ids, mismatched), mismatched)
            apo(output, mismatched_logps)

        nll_ms, apo_ms, two_pass_ms = timed([nll_step, apo_step, apo_step_two_passes], args.repeats)
        rows.append([f"train step, batch {batch}", round(nll_ms, 1), round(apo_ms, 1), round(apo_ms / nll_ms, 2),
                     round(two_pass_ms, 1)])
    policy.eval()
    for batch in (1, 16):
        pixels, state, ids = observations(policy, batch, torch.Generator().manual_seed(batch))
        [decode_ms] = timed([lambda: policy.generate(pixels, state, ids)], args.repeats)
        rows.append([f"greedy decode, batch {batch}", round(decode_ms, 1), "", "", ""])
    report("step_cost", ["what", "NLL ms (or decode ms)", "APO ms", "APO / NLL", "APO ms, mismatched pair in a "
                         "second full pass"], rows, {"threads": args.threads})


if __name__ == "__main__":
    main()
