"""Deploy an actor in a world, with a human watching, and record every step.

This is the "deploy → collect" half of the APO loop (docs/apo.md §1). Episode ``i`` of a
collection is always played with seed ``base_seed + i``, and each finished episode is on
disk before the next one starts, so a collection cut off by a crash resumes where it
stopped: the same episodes, never one twice, none lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apo_core.actors import Actor
from apo_core.config import PerturbationConfig
from apo_core.envs.base import RobotEnv
from apo_core.human.takeover import Overseer
from apo_core.labels import ActedBy
from apo_core.recording.episodes import Episode, EpisodeRecorder, Source, read_episode
from apo_core.recording.store import EpisodeStore, IndexTaken


def play_episode(env: RobotEnv, actor: Actor, overseer: Overseer | None, seed: int, source: Source) -> EpisodeRecorder:
    """Play one episode to success, the step cap, or the overseer's request to stop.

    With ``source="expert"`` the actor is the demonstrator and every step is an
    ``expert_demo`` step; otherwise the actor is the deployed policy and the overseer may
    act instead of it on any step (the policy's proposal is still recorded).
    """
    actor.reset(seed)
    if overseer is not None:
        overseer.reset(seed)
    observation = env.reset(seed)
    recorder = EpisodeRecorder(task=env.task, instruction=env.instruction, seed=seed)
    while True:
        proposal = actor.act(observation)
        human_action = overseer.decide(observation, proposal) if overseer is not None else None
        if source == "expert":
            action, acted_by, recorded_proposal = proposal, ActedBy.EXPERT_DEMO, None
        elif human_action is not None:
            action, acted_by, recorded_proposal = human_action, ActedBy.HUMAN, proposal
        else:
            action, acted_by, recorded_proposal = proposal, ActedBy.POLICY, proposal
        if acted_by == ActedBy.HUMAN and hasattr(actor, "drop_plan"):
            actor.drop_plan()  # a takeover mid-chunk drops the rest of the policy's chunk
        outcome = env.step(action)
        if overseer is not None:
            overseer.observe(outcome)
        recorder.add(observation, action, recorded_proposal, acted_by, outcome)
        observation = outcome.observation
        if outcome.success or outcome.truncated or (overseer is not None and overseer.wants_episode_end):
            return recorder


@dataclass(frozen=True)
class CollectionSummary:
    """What a collection produced (for the CLI, the flow's artifacts and the lineage)."""

    episodes: int
    successes: int
    steps: int
    human_steps: int
    takeovers: int
    paths: tuple[Path, ...]

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    @property
    def takeovers_per_episode(self) -> float:
        return self.takeovers / self.episodes if self.episodes else 0.0

    @property
    def human_step_share(self) -> float:
        return self.human_steps / self.steps if self.steps else 0.0

    def to_dict(self) -> dict:
        return {
            "episodes": self.episodes,
            "success_rate": self.success_rate,
            "takeovers_per_episode": self.takeovers_per_episode,
            "human_step_share": self.human_step_share,
        }

    def merged(self, other: CollectionSummary) -> CollectionSummary:
        """The summary of both collections (e.g. every robot's of one round)."""
        return CollectionSummary(
            episodes=self.episodes + other.episodes, successes=self.successes + other.successes,
            steps=self.steps + other.steps, human_steps=self.human_steps + other.human_steps,
            takeovers=self.takeovers + other.takeovers, paths=(*self.paths, *other.paths),
        )

    def plus(self, episode: Episode, path: Path) -> CollectionSummary:
        return CollectionSummary(
            episodes=self.episodes + 1,
            successes=self.successes + int(episode.meta.success),
            steps=self.steps + len(episode),
            human_steps=self.human_steps + int(np.sum(episode.is_intervention)),
            takeovers=self.takeovers + episode.meta.n_takeovers,
            paths=(*self.paths, path),
        )


EMPTY_SUMMARY = CollectionSummary(episodes=0, successes=0, steps=0, human_steps=0, takeovers=0, paths=())


def recorded_summary(store: EpisodeStore) -> CollectionSummary:
    """The summary of every episode in ``store``, also those recorded before a crash."""
    summary = EMPTY_SUMMARY
    for path in store.paths():
        summary = summary.plus(read_episode(path), path)
    return summary


def _play_in(env: RobotEnv, world: PerturbationConfig | None, actor: Actor, overseer: Overseer | None, *,
             seed: int, source: Source) -> EpisodeRecorder:
    """:func:`play_episode` in ``world`` (None: the env as it is), the env put back after."""
    if world is None:
        return play_episode(env, actor, overseer, seed=seed, source=source)
    before = env.perturbation
    env.perturb(world)
    try:
        return play_episode(env, actor, overseer, seed=seed, source=source)
    finally:
        env.perturb(before)


def collect_episodes(
    env: RobotEnv,
    actor: Actor,
    overseer: Overseer | None,
    store: EpisodeStore,
    *,
    collection: str,
    until: int | None = None,
    episodes: int | None = None,
    base_seed: int,
    source: Source,
    policy_round: int | None,
    robot_id: str,
    fps: int,
    perturbation: str | None = None,
    on_episode: Callable[[Episode, Path], None] | None = None,
    varied: Callable[[int], PerturbationConfig | None] | None = None,
) -> CollectionSummary:
    """Record episodes into ``store`` until it holds ``until`` of them, or record
    ``episodes`` more (exactly one of the two).

    The episode at index i plays seed ``base_seed + i``. ``collection`` names this
    collection (e.g. "expert", "round-0003"); with the robot, task and index it makes the
    episode id, which must be unique across collections (the same champion may collect for
    several rounds). Resumes after a crash: episodes already on disk are kept and not
    replayed. If another writer of the same directory took the index first, the finished
    episode is renumbered to the next free index (its seed stays the one it played): never
    dropped, never written over. ``varied(seed)``: the world an episode on that seed is
    played in (None: the env as it is), recorded as the episode's perturbation; the env is
    put back after each. Returns a summary of the episodes recorded here.
    """
    if (until is None) == (episodes is None):
        raise ValueError("collect_episodes: give exactly one of until= and episodes=")
    summary = EMPTY_SUMMARY
    while episodes is None or summary.episodes < episodes:
        index = store.next_index()
        if until is not None and index >= until:
            break
        world = varied(base_seed + index) if varied is not None else None
        recorder = _play_in(env, world, actor, overseer, seed=base_seed + index, source=source)
        while True:
            episode = recorder.finish(
                episode_id=f"{robot_id}.{collection}.{env.task}.e{index:06d}",
                episode_index=index,
                source=source,
                policy=actor.name,
                policy_round=policy_round,
                robot_id=robot_id,
                takeover_reasons=list(getattr(overseer, "takeover_reasons", [])),
                perturbation=world.name if world is not None else perturbation,
                fps=fps,
                gripper_dim=env.gripper_dim,
            )
            try:
                path = store.write(episode)
                break
            except IndexTaken:
                index = store.next_index()
        summary = summary.plus(episode, path)
        if on_episode is not None:
            on_episode(episode, path)
    return summary
