"""Evaluation keeps every outcome by seed; the lockstep evaluator plays the same episodes."""

import pytest
from conftest import STATE_CONFIG

from apo_core.config import load_config
from apo_core.data.steps import expert_mask
from apo_core.envs import make_env
from apo_core.evaluate import evaluate, evaluate_actor, evaluate_lockstep, evaluation_seeds
from apo_core.policy import ApoVlaPolicy
from apo_core.policy.actor import VlaActor
from apo_core.training import train


@pytest.fixture(scope="module")
def state_only(small_round, tmp_path_factory):
    """A state-only policy, briefly behaviour-cloned: it acts without images."""
    config = load_config(STATE_CONFIG, {"env": {"max_steps": 60}, "evaluation": {"episodes": 6, "lockstep_envs": 4}})
    policy = ApoVlaPolicy.build(config.policy, small_round.select(expert_mask(small_round)), image_size=64,
                                action_dim=4, gripper_dim=3, seed=0)
    settings = config.train.model_copy(update={"bc_steps": 30, "threads": 1, "bc_batch_size": 16})
    return config, train(policy, small_round, "bc", settings, tmp_path_factory.mktemp("bc"))


@pytest.mark.slow
def test_lockstep_and_serial_play_the_same_episodes(state_only):
    config, policy = state_only
    seeds = evaluation_seeds(config, "none")
    env = make_env("push", config.env, render=False)
    serial = evaluate_actor(env, VlaActor(policy, env.instruction), seeds)
    envs = [make_env("push", config.env, render=False) for _ in range(4)]
    lockstep = evaluate_lockstep(envs, VlaActor(policy, env.instruction), seeds)
    assert [o.seed for o in lockstep.outcomes] == seeds == list(range(800_000_000, 800_000_006))
    assert lockstep.outcomes == serial.outcomes


def test_validation_and_test_seeds_are_disjoint_and_every_outcome_is_kept(state_only):
    config, policy = state_only
    seen = []
    results = evaluate(config, lambda env: VlaActor(policy, env.instruction), tasks=["push"], split="test",
                       on_episode=seen.append)
    row = results[0].to_dict()
    assert [o["seed"] for o in row["outcomes"]] == list(range(900_000_000, 900_000_006))
    assert row["successes"] == sum(o["success"] for o in row["outcomes"]) and len(seen) == 6
    assert not set(evaluation_seeds(config, "none", "validation")) & set(evaluation_seeds(config, "none", "test"))


def test_a_prepared_worker_plays_its_round_on_the_worlds_it_built(state_only):
    """prepare_worker (a Ray worker's warm-up) builds exactly the worlds the round's
    collection and evaluation chunks then use: they build none of their own."""
    from apo_core.envs import pool, process_env
    from apo_core.evaluate import evaluation_chunks, play_chunk
    from apo_core.loop import learner

    config, policy = state_only
    config = config.model_copy(update={"evaluation": config.evaluation.model_copy(
        update={"perturbations": config.evaluation.perturbations[:1], "perturbed_episodes": 2})})
    learner.prepare_worker(config, ["push"])
    built = {key: [id(env) for env in envs] for key, envs in pool._POOLS.items()}
    process_env("push", config.env)  # what a robot collects in
    for chunk in evaluation_chunks(config, tasks=["push"], suites=learner.round_suites(config)):
        play_chunk(config, lambda env: VlaActor(policy, env.instruction), chunk)
    assert {key: [id(env) for env in envs] for key, envs in pool._POOLS.items()} == built
