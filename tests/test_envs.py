"""The MetaWorld world: seeded layouts, rendering, experts, perturbations, clear errors."""

import numpy as np
import pytest

from apo_core.config import EnvConfig, PerturbationConfig
from apo_core.envs import make_env
from apo_core.errors import ConfigError
from apo_core.human import ScriptedExpert


def test_observation_shapes_and_rendering(env_for, config):
    env = env_for("push")
    obs = env.reset(0)
    size = config.env.image_size
    assert obs.image.shape == (size, size, 3) and obs.image.dtype == np.uint8
    assert obs.image.std() > 10, "rendered frame is blank"
    assert obs.state.shape == (4,) and obs.environment_state.shape == (17,)
    assert env.action_dim == 4 and env.gripper_dim == 3
    assert env.instruction == "push the puck to the goal"


def test_seeded_resets_give_fresh_layouts_with_a_visible_goal(env_for):
    env = env_for("pick-place")
    first, again, other = env.reset(3), env.reset(3), env.reset(4)
    np.testing.assert_array_equal(first.native, again.native)
    np.testing.assert_array_equal(first.image, again.image)
    assert not np.allclose(first.environment_state, other.environment_state)
    goal = first.native[-3:]
    assert np.linalg.norm(goal) > 0.1, "goal zeroed: the partially-observable trap"


def test_expert_solves_push(env_for):
    env = env_for("push")
    expert = ScriptedExpert(env)
    obs = env.reset(1)
    for _ in range(env.max_steps):
        outcome = env.step(expert.act(obs))
        obs = outcome.observation
        if outcome.success:
            break
    assert outcome.success


def test_each_world_renders_its_own_frame_beside_worlds_built_later(config):
    push = make_env("push", config.env)
    alone = push.reset(0).image
    drawer = make_env("drawer-open", config.env)  # its GL context is made after push's
    assert drawer.reset(0).image.std() > 10
    np.testing.assert_array_equal(push.reset(0).image, alone)
    blind = make_env("push", config.env, render=False)
    blind.reset(0)
    np.testing.assert_array_equal(blind.render_image(), alone)


def test_truncation_at_the_step_cap(config):
    env = make_env("reach", config.env.model_copy(update={"max_steps": 3}))
    env.reset(0)
    flags = [env.step(np.zeros(4, np.float32)).truncated for _ in range(3)]
    assert flags == [False, False, True]


@pytest.mark.parametrize("kind,magnitude", [("table_color", 0.7), ("lighting", 0.9), ("camera", 0.05)])
def test_visual_perturbations_change_the_image_deterministically(config, kind, magnitude):
    world = make_env("push", config.env)
    plain = world.reset(0).image
    perturbation = PerturbationConfig(name=kind, kind=kind, magnitude=magnitude, seed=7)
    world.perturb(perturbation)  # one world plays every suite in turn
    perturbed = world.reset(0).image
    assert np.abs(plain.astype(int) - perturbed.astype(int)).mean() > 1.0
    np.testing.assert_array_equal(make_env("push", config.env, perturbation).reset(0).image, perturbed)
    world.perturb(None)
    np.testing.assert_array_equal(world.reset(0).image, plain)
    world.perturb(perturbation)
    np.testing.assert_array_equal(world.reset(0).image, perturbed)


def test_object_shift_moves_the_spawn_region(env_for, config):
    plain = env_for("push").reset(0).environment_state[:2]
    shifted_env = make_env("push", config.env, PerturbationConfig(name="s", kind="object_shift", magnitude=0.05, seed=1))
    shifted = shifted_env.reset(0).environment_state[:2]
    assert np.linalg.norm(shifted - plain) == pytest.approx(0.05, abs=0.005)
    shifted_env.perturb(None)
    np.testing.assert_array_equal(shifted_env.reset(0).environment_state[:2], plain)


def test_unknown_task_and_camera_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown task 'pik-place'.*pick-place"):
        make_env("pik-place", EnvConfig())
    with pytest.raises(ValueError, match="camera\n  Input should be 'corner', 'corner2'"):
        EnvConfig(camera="front")  # refused at config load, before any world is built
