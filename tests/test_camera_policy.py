"""The camera policy: spatial-softmax keypoints find where a feature fires, the conv policy
saves and loads exactly, behaviour cloning's object head learns from recorded poses (and
leaves out steps recorded without them), every update refits it, and a policy that
estimates the objects reads the head's estimate, never the poses."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from apo_core.config import load_config, with_overrides
from apo_core.data.steps import expert_mask
from apo_core.policy import ApoVlaPolicy, load_policy
from apo_core.policy.conv_encoder import SpatialSoftmax
from apo_core.training import train


def test_a_keypoint_sits_where_its_feature_fires():
    softmax = SpatialSoftmax(channels=1, keypoints=1, height=9, width=9)
    with torch.no_grad():
        softmax.heat_maps.weight.fill_(1.0)
        softmax.heat_maps.bias.zero_()
        softmax.log_temperature.fill_(-3.0)  # sharp
    features = torch.zeros(2, 1, 9, 9)
    features[0, 0, 2, 6] = 10.0  # row 2, column 6
    features[1, 0, 8, 0] = 10.0
    points = softmax(features)
    torch.testing.assert_close(points[0, 0], torch.tensor([0.5, -0.5]), atol=1e-3, rtol=0)
    torch.testing.assert_close(points[1, 0], torch.tensor([-1.0, 1.0]), atol=1e-3, rtol=0)


def camera_config(**train_settings):
    config = load_config(None, {"policy": {"state_inputs": "proprio+goal", "estimate_objects": False}})
    settings = {"bc_steps": 40, "bc_batch_size": 16, "checkpoint_every": 100, "threads": 1, "aux_object_weight": 0.0,
                **train_settings}
    return with_overrides(config, {"train": settings})


def test_the_conv_chunk_policy_saves_and_loads_exactly(small_round, tmp_path):
    config = camera_config()
    policy = ApoVlaPolicy.build(config.policy, small_round.select(expert_mask(small_round)), image_size=64,
                                action_dim=4, gripper_dim=3, seed=0).eval()
    assert policy.config.image_tokens == config.policy.keypoints and policy.chunk_size == 4
    policy.save_pretrained(tmp_path)
    loaded = load_policy(tmp_path)
    index = np.arange(4)
    observations = policy.observations(small_round.images[index], small_round.proprio[index],
                                       small_round.environment_state[index], list(small_round.instructions[index]))
    assert torch.equal(policy.generate(observations).ids, loaded.generate(observations).ids)
    for (name, a), b in zip(policy.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_behaviour_cloning_teaches_the_image_where_the_objects_are(small_round, tmp_path):
    config = camera_config(aux_object_weight=1.0)
    policy = ApoVlaPolicy.build(config.policy, small_round.select(expert_mask(small_round)), image_size=64,
                                action_dim=4, gripper_dim=3, seed=0)
    losses = []
    train(policy, small_round, "bc", config.train, tmp_path, on_step=lambda step, total, m: losses.append(m))
    object_mse = [m["object_mse"] for m in losses]
    assert len(object_mse) == 40 and np.mean(object_mse[-5:]) < np.mean(object_mse[:5])
    plain, plain_losses = camera_config(), []  # aux_object_weight 0: no object loss at all
    train(ApoVlaPolicy.build(plain.policy, small_round.select(expert_mask(small_round)), image_size=64, action_dim=4,
                             gripper_dim=3, seed=0),
          small_round, "bc", plain.train, tmp_path / "plain", on_step=lambda step, total, m: plain_losses.append(m))
    assert plain_losses and all("object_mse" not in m for m in plain_losses)


def test_steps_recorded_without_poses_are_left_out_of_the_object_loss(small_round, tmp_path):
    config = camera_config(aux_object_weight=1.0, bc_steps=6)
    demos = small_round.select(expert_mask(small_round))
    first = demos.episode_ids == demos.episode_ids[0]
    for name, unrecorded, losses in (("none", np.ones(len(demos), bool), []), ("some", first, [])):
        steps = replace(demos, environment_state=np.where(unrecorded[:, None], 0.0, demos.environment_state))
        policy = ApoVlaPolicy.build(config.policy, demos, image_size=64, action_dim=4, gripper_dim=3, seed=0)
        train(policy, steps, "bc", config.train, tmp_path / name, on_step=lambda step, total, m: losses.append(m))
        recorded = [m for m in losses if "object_mse" in m]
        assert len(losses) == 6 and (not recorded if name == "none" else len(recorded) == 6), name


@pytest.mark.parametrize("method", ["dagger", "apo"])
def test_every_update_refits_the_object_head_on_the_rounds_frames(small_round, tmp_path, method):
    config = camera_config(aux_object_weight=1.0, epochs=2, batch_size=8)
    policy = ApoVlaPolicy.build(config.policy, small_round.select(expert_mask(small_round)), image_size=64,
                                action_dim=4, gripper_dim=3, seed=0)
    head = [p.detach().clone() for p in policy.object_head.parameters()]
    losses = []
    train(policy, small_round, method, config.train, tmp_path, on_step=lambda step, total, m: losses.append(m))
    assert losses and all(np.isfinite(m["object_mse"]) for m in losses)
    assert any(not torch.equal(a, b) for a, b in zip(head, policy.object_head.parameters()))


def test_a_policy_that_estimates_the_objects_reads_the_image_not_the_poses(small_round):
    config = with_overrides(camera_config(aux_object_weight=1.0), {"policy": {"estimate_objects": True}})
    policy = ApoVlaPolicy.build(config.policy, small_round.select(expert_mask(small_round)), image_size=64,
                                action_dim=4, gripper_dim=3, seed=0).eval()
    index = np.arange(4)
    steps = small_round.select(index)

    def logps(environment_state):
        observations = policy.observations(steps.images, steps.proprio, environment_state, list(steps.instructions))
        return policy.score_actions(observations, policy.generate(observations)).token_logps

    before = logps(steps.environment_state)
    moved = steps.environment_state.copy()
    moved[:, :-3] += 0.1  # every object pose (the goal, the last 3, is an input)
    assert torch.equal(logps(moved), before)  # the true poses are never read
    with torch.no_grad():
        policy.object_head.bias.add_(1.0)  # another estimate of the same image
    assert not torch.allclose(logps(steps.environment_state), before)
