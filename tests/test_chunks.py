"""Action chunks: labels per chunk, H = 1 is the per-step policy, open-loop execution,
a takeover drops the rest of the chunk, and a camera policy renders only when it decides."""

import numpy as np
import pytest
import torch

from apo_core.config import load_config
from apo_core.data.steps import expert_mask
from apo_core.envs import process_env, process_envs
from apo_core.evaluate import evaluate_actor, evaluate_lockstep
from apo_core.labels import ActedBy, Label, chunk_labels, label_steps
from apo_core.policy import ApoVlaPolicy
from apo_core.policy.actor import VlaActor
from apo_core.recording.collector import play_episode

P, H = ActedBy.POLICY, ActedBy.HUMAN
F, A, C = Label.FAILURE_PRONE, Label.AUTONOMOUS, Label.HUMAN


def chunked(acted_by, k, horizon):
    labels = label_steps(np.array(acted_by), k=k)
    return labels.tolist(), chunk_labels(labels, np.zeros(len(labels), dtype=object), horizon).tolist()


def test_a_takeover_inside_a_chunk_makes_every_chunk_holding_its_failure_prone_steps_undesirable():
    steps, chunks = chunked([P, P, P, P, P, P, H, H, P, P, P, P], k=2, horizon=4)
    assert steps == [A, A, A, A, F, F, C, C, A, A, A, A]
    # chunk 0 ends just before the window (its edge): autonomous; chunks 1-5 hold step 4 or 5
    assert chunks == [A, F, F, F, F, F, C, C, A, A, A, A]


def test_a_chunk_starting_at_the_takeover_is_the_correction_and_h1_keeps_the_step_labels():
    steps, chunks = chunked([P, P, P, H, H, H, P, P], k=3, horizon=3)
    assert chunks[3:6] == [C, C, C] and chunks[:3] == [F, F, F]
    assert chunked([P, P, P, H, H, H, P, P], k=3, horizon=1)[1] == steps


def test_two_takeovers_in_one_chunk():
    steps, chunks = chunked([P, P, H, P, P, H, H, P], k=1, horizon=4)
    assert steps == [A, F, C, A, F, C, C, A]
    # the chunk that starts at the first correction holds the second takeover's failure-prone step
    assert chunks == [F, F, F, F, F, C, C, A]


def test_chunks_stop_at_the_end_of_their_episode():
    labels = np.array([A, A, A, F, C, A], dtype=np.int8)
    episodes = np.array(["a", "a", "a", "b", "b", "b"], dtype=object)
    assert chunk_labels(labels, episodes, 4).tolist() == [A, A, A, F, C, A]


@pytest.fixture(scope="module")
def camera_policies(small_round):
    """Camera policies (conv encoder) with H = 1 and H = 4 and the same weights."""
    config = load_config(None, {"policy": {"use_image": True, "state_inputs": "proprio+goal", "chunk_size": 1}})
    demos = small_round.select(expert_mask(small_round))
    one = ApoVlaPolicy.build(config.policy, demos, image_size=64, action_dim=4, gripper_dim=3, seed=0)
    four_config = config.policy.model_copy(update={"chunk_size": 4})
    four = ApoVlaPolicy.build(four_config, demos, image_size=64, action_dim=4, gripper_dim=3, seed=0)
    four.load_state_dict(one.state_dict())
    return demos, one.eval(), four.eval()


def test_a_chunk_of_one_scores_as_the_per_step_policy_and_its_first_step_as_a_longer_chunk(camera_policies):
    demos, one, four = camera_policies
    index = np.arange(6)
    observations = one.observations(demos.images[index], demos.proprio[index], demos.environment_state[index],
                                    list(demos.instructions[index]))
    actions = demos.actions[index]
    per_step = torch.from_numpy(one.action_tokenizer.encode(actions))
    tokens = one.encode_actions(actions[:, None])
    assert torch.equal(tokens.ids, per_step)
    with torch.no_grad():
        single = one.score_actions(observations, tokens).token_logps
        chunk = np.repeat(actions[:, None], 4, axis=1)
        longer = four.score_actions(observations, four.encode_actions(chunk)).token_logps
    assert single.shape == (6, 4) and longer.shape == (6, 16)
    torch.testing.assert_close(longer[:, :4], single)  # causal: the first action's tokens see no later ones
    assert four.undesirable_skip == [3, 7, 11, 15]
    decoded, _ = four.decode_actions(four.encode_actions(chunk))
    np.testing.assert_allclose(decoded, one.action_tokenizer.decode(four.encode_actions(chunk).ids.numpy()
                                                                    .reshape(-1, 4)).reshape(6, 4, 4))


class Recorded:
    """The real actor's decisions, recorded: which step each was taken at and its chunk."""

    def __init__(self, actor: VlaActor):
        self.actor, self.decisions = actor, []
        plan_batch = actor.plan_batch

        def planning(observations):
            chunks = plan_batch(observations)
            self.decisions.append(chunks[0])
            return chunks

        actor.plan_batch = planning


class OneStepTakeover:
    """A person who takes the controls at one step only and gives them straight back."""

    def __init__(self, step: int):
        self.step, self.seen, self.wants_episode_end = step, 0, False

    def reset(self, seed):
        self.seen = 0

    def decide(self, observation, policy_action):
        return np.zeros(4, dtype=np.float32) if self.seen == self.step else None

    def observe(self, outcome):
        self.seen += 1


def played(env, actor, overseer):
    return play_episode(env, actor, overseer, seed=3, source="interaction").finish(
        episode_id="t", episode_index=0, source="interaction", policy="vla", policy_round=None, robot_id="r",
        takeover_reasons=[], perturbation=None, fps=20, gripper_dim=3)


@pytest.fixture(scope="module")
def short_world():
    """Kept by the process's pool: under EGL an env closed (or collected) blackens later renders."""
    return process_env("push", load_config(None, {"env": {"max_steps": 12}}).env)


def test_open_loop_replays_exactly_h_actions_then_replans(camera_policies, short_world):
    _, _, four = camera_policies
    actor = VlaActor(four, short_world.instruction)
    recorded = Recorded(actor)
    episode = played(short_world, actor, None)
    assert len(episode) == 12 and len(recorded.decisions) == 3
    np.testing.assert_array_equal(episode.actions, np.concatenate(recorded.decisions))


def test_a_takeover_mid_chunk_drops_the_rest_of_the_chunk(camera_policies, short_world):
    _, _, four = camera_policies
    actor = VlaActor(four, short_world.instruction)
    recorded = Recorded(actor)
    episode = played(short_world, actor, OneStepTakeover(step=5))
    acted = episode.acted_by
    assert acted.tolist() == [P] * 5 + [H] + [P] * 6
    # decisions at steps 0 and 4; the human acts at step 5 (the chunk's 2nd action is dropped);
    # the policy decides afresh at step 6 and again at 10
    assert len(recorded.decisions) == 4
    actions = episode.actions
    np.testing.assert_array_equal(actions[4], recorded.decisions[1][0])
    np.testing.assert_array_equal(actions[6:10], recorded.decisions[2])
    np.testing.assert_array_equal(actions[10:12], recorded.decisions[3][:2])


@pytest.mark.slow
def test_lockstep_renders_only_when_deciding_and_plays_the_serial_episodes(camera_policies, monkeypatch):
    _, _, four = camera_policies
    config = load_config(None, {"env": {"max_steps": 40}})
    seeds = list(range(800_000_000, 800_000_004))
    rendering = process_env("push", config.env)
    serial = evaluate_actor(rendering, VlaActor(four, rendering.instruction), seeds)
    lazy = process_envs("push", config.env, render=False, count=2)
    renders = []
    for env in lazy:
        render_image = env.render_image
        monkeypatch.setattr(env, "render_image", lambda render_image=render_image: renders.append(1) or render_image())
    lockstep = evaluate_lockstep(lazy, VlaActor(four, rendering.instruction), seeds)
    assert lockstep.outcomes == serial.outcomes
    assert len(renders) == sum(-(-o.length // 4) for o in lockstep.outcomes)
