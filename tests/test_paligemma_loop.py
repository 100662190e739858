"""Bring your own VLA: the π0-FAST-layout policy runs the whole loop (bootstrap + a round)
through the real Prefect flows at tiny size on the CPU, and the published rounds reload
from the model store and act."""

import pytest
from conftest import bootstrap_and_one_round, use_ephemeral_prefect

pytestmark = pytest.mark.slow  # whole rounds under the Prefect engine


@pytest.fixture(scope="module")
def paligemma_rounds(tmp_path_factory):
    root = tmp_path_factory.mktemp("paligemma")
    path = root / "paligemma.yaml"
    path.write_text(f"""
env: {{tasks: [push], max_steps: 80}}
policy: {{kind: paligemma-fast, chunk_size: 4, use_image: true, state_inputs: proprio+goal}}
collect: {{interactions_per_round: 2, expert_demos_per_task: 2, robots: [sim-robot-0]}}
evaluation: {{episodes: 2, perturbations: []}}
train: {{bc_steps: 10, epochs: 0.2, bc_batch_size: 8, batch_size: 8, threads: 1}}
cluster: {{engine: local}}
paths: {{workdir: "{root / 'work'}"}}
""")
    use_ephemeral_prefect(root)
    return bootstrap_and_one_round(path)


def test_the_paligemma_fast_policy_runs_the_loop_and_its_rounds_reload_and_act(paligemma_rounds):
    from apo_core.envs import make_env
    from apo_core.loop.robots import deploy_round
    from apo_core.policy import load_policy
    from apo_core.policy.actor import VlaActor
    from apo_core.policy.modeling_paligemma_fast import PaliGemmaFastPolicy
    from apo_core.registry.store import registry_for

    config, history = paligemma_rounds
    assert [h["round"] for h in history] == [0, 1]
    registry = registry_for(config)
    assert [(m.round, m.method) for m in registry.rounds()] == [(0, "bc"), (1, "apo")]
    policy = load_policy(deploy_round(config, 1))
    assert isinstance(policy, PaliGemmaFastPolicy) and policy.chunk_size == 4
    env = make_env("push", config.env)
    action = VlaActor(policy, env.instruction).act(env.reset(seed=3))
    assert action.shape == (4,)
    assert len(history[1]["suites"]) == 0 and history[1]["success_rate"] is not None
