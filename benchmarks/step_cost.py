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

# Run as `python benchmarks/step_cost.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

from apo_core.config import load_config  # noqa: E402
from apo_core.data.steps import Steps  # noqa: E402
from apo_core.labels import ActedBy, Label  # noqa: E402
from apo_core.objectives import action_logps, apo_loss, l1_error, nll_loss  # noqa: E402
from apo_core.policy import ActionTokens, ApoVlaPolicy  # noqa: E402

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


def fresh_policy(config_path: str | None) -> ApoVlaPolicy:
    """A fresh policy as the bootstrap builds it for the config (``None``: the embedded
    defaults, ``policy:`` in configs/default.yaml), its statistics from random stand-in
    expert steps."""
    config, rows = load_config(config_path), 100
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
    return ApoVlaPolicy.build(config.policy, expert_steps, image_size=config.env.image_size, action_dim=4,
                              gripper_dim=3, seed=0)


def observations(policy: ApoVlaPolicy, batch: int, generator: torch.Generator):
    """Random policy inputs for ``batch`` observations."""
    size, config = policy.config.image_size, policy.config
    images = (torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, generator=generator).numpy()
              if policy.needs_image else None)
    proprio = torch.randn(batch, config.proprio_dim, generator=generator).numpy()
    environment_state = torch.randn(batch, config.environment_state_dim, generator=generator).numpy()
    return policy.observations(images, proprio, environment_state, [INSTRUCTION] * batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--config", default=None, help="YAML over the defaults, e.g. configs/state.yaml")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = fresh_policy(args.config).train()
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-4, fused=True)
    rows = []
    for batch in (16, 32):
        g = torch.Generator().manual_seed(batch)
        inputs = observations(policy, batch, g)
        bins = ActionTokens(torch.randint(0, 255, (batch, 4), generator=g))
        mismatched = ActionTokens(bins.ids.roll(1, dims=0))
        ref, ref_mismatched = torch.randn(batch, generator=g), torch.randn(batch, generator=g)
        target = torch.randn(batch, 4, generator=g)
        desirable = torch.arange(batch) % 4 != 0

        def optimise(loss: torch.Tensor) -> None:
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(policy.parameters()), 1.0)
            optimizer.step()

        def nll_step():
            optimise(nll_loss(policy.score_actions(inputs, bins).token_logps)[0])

        def apo(scores, mismatched_logps):
            decoded, ok = policy.decode_normalized(ActionTokens(scores.greedy_ids))
            loss, _ = apo_loss(action_logps(scores.token_logps, desirable, 3), ref, mismatched_logps.sum(-1),
                               ref_mismatched, desirable, l1_error(decoded, target, ok))
            optimise(loss + nll_loss(scores.token_logps[desirable])[0])

        def apo_step():
            scores = policy.score_actions(inputs, bins, mismatched=mismatched)
            apo(scores, scores.mismatched_logps)

        def apo_step_two_passes():
            scores = policy.score_actions(inputs, bins)
            with torch.no_grad():
                mismatched_logps = policy.score_actions(inputs, mismatched).token_logps
            apo(scores, mismatched_logps)

        nll_ms, apo_ms, two_pass_ms = timed([nll_step, apo_step, apo_step_two_passes], args.repeats)
        rows.append([f"train step, batch {batch}", round(nll_ms, 1), round(apo_ms, 1), round(apo_ms / nll_ms, 2),
                     round(two_pass_ms, 1)])
    policy.eval()
    for batch in (1, 16):
        inputs = observations(policy, batch, torch.Generator().manual_seed(batch))
        [decode_ms] = timed([lambda: policy.generate(inputs)], args.repeats)
        rows.append([f"greedy decode, batch {batch}", round(decode_ms, 1), "", "", ""])
    report("step_cost", ["what", "NLL ms (or decode ms)", "APO ms", "APO / NLL", "APO ms, mismatched pair in a "
                         "second full pass"], rows, {"threads": args.threads})


if __name__ == "__main__":
    main()
