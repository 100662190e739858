"""The simulated human and the real-human (teleoperator) path, through the collector."""

import numpy as np

from apo_core.actors import RandomActor
from apo_core.human import ScriptedExpert, SimulatedHuman, TeleopHuman
from apo_core.labels import ActedBy
from apo_core.recording.collector import play_episode


class AntiExpert:
    """Always does the opposite of the expert (with full grip): maximally divergent."""

    name = "anti-expert"

    def __init__(self, env):
        self.expert = ScriptedExpert(env)

    def reset(self, seed):
        pass

    def act(self, observation):
        action = -np.sign(self.expert.act(observation))
        action[action == 0] = 1.0
        return action.astype(np.float32)


def test_a_diverging_policy_gets_taken_over_and_corrections_last_the_configured_time(env_for, config):
    env = env_for("push")
    human = SimulatedHuman(ScriptedExpert(env), env, config.takeover)
    episode = play_episode(env, AntiExpert(env), human, seed=5, source="interaction").finish(
        episode_id="t", episode_index=0, source="interaction", policy="anti-expert", policy_round=None,
        robot_id="r", takeover_reasons=human.takeover_reasons, perturbation=None, fps=20, gripper_dim=3,
    )
    acted = episode.acted_by
    assert episode.meta.n_takeovers >= 2
    assert human.takeover_reasons[0] == "divergence"
    # The first takeover comes after exactly divergence_steps - 1 policy steps.
    first = int(np.argmax(acted == ActedBy.HUMAN))
    assert first == config.takeover.divergence_steps - 1
    # Each correction lasts correction_steps unless the episode ends first.
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, acted == ActedBy.HUMAN, 0].astype(int))))[::2]
    assert all(r == config.takeover.correction_steps for r in runs[:-1])
    # The policy's proposal is recorded on human steps too (for preference pairs).
    assert not np.isnan(episode.policy_actions).any()
    assert np.array_equal(episode.is_intervention, acted == ActedBy.HUMAN)


def test_expert_deployed_as_the_policy_is_never_taken_over(env_for, config):
    env = env_for("push")
    expert = ScriptedExpert(env)
    human = SimulatedHuman(ScriptedExpert(env), env, config.takeover)
    recorder = play_episode(env, expert, human, seed=2, source="interaction")
    assert human.takeover_reasons == []
    assert recorder.finish(
        episode_id="t", episode_index=0, source="interaction", policy="expert", policy_round=None,
        robot_id="r", takeover_reasons=[], perturbation=None, fps=20, gripper_dim=3,
    ).meta.success


def test_no_progress_triggers_a_takeover(env_for, config):
    env = env_for("push")
    rule = config.takeover.model_copy(update={"divergence_threshold": 100.0, "no_progress_steps": 8})

    class Frozen:
        name = "frozen"

        def reset(self, seed):
            pass

        def act(self, observation):
            return np.zeros(4, np.float32)

    human = SimulatedHuman(ScriptedExpert(env), env, rule)
    play_episode(env, Frozen(), human, seed=0, source="interaction")
    assert human.takeover_reasons and human.takeover_reasons[0] == "no_progress"


class SyntheticTeleoperator:
    """Plays a person on lerobot's keyboard teleoperator: a scripted list of events."""

    def __init__(self, script):
        self.script = list(script)
        self.step = 0

    def get_teleop_events(self):
        from lerobot.teleoperators.utils import TeleopEvents

        intervening, terminate = self.script[min(self.step, len(self.script) - 1)]
        self.step += 1
        return {TeleopEvents.IS_INTERVENTION: intervening, TeleopEvents.TERMINATE_EPISODE: terminate}

    def get_action(self):
        return {"delta_x": 1.0, "delta_y": 0.0, "delta_z": -1.0, "gripper": 0}


def test_a_teleoperator_takes_over_while_it_signals_intervention(env_for):
    env = env_for("push")
    script = [(False, False)] * 3 + [(True, False)] * 4 + [(False, False)] * 2 + [(False, True)]
    human = TeleopHuman(SyntheticTeleoperator(script), env.action_dim, env.gripper_dim)
    recorder = play_episode(env, RandomActor(env.action_dim), human, seed=0, source="interaction")
    episode = recorder.finish(
        episode_id="t", episode_index=0, source="interaction", policy="random", policy_round=None,
        robot_id="r", takeover_reasons=[], perturbation=None, fps=20, gripper_dim=3,
    )
    assert len(episode) == len(script)  # TERMINATE_EPISODE ended it
    assert episode.acted_by.tolist() == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    # lerobot's gripper code 0 (close) becomes MetaWorld's +1 grip effort.
    np.testing.assert_array_equal(episode.actions[3], [1.0, 0.0, -1.0, 1.0])
    assert episode.meta.n_takeovers == 1
