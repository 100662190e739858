"""Evaluation: seeded episodes per task and per perturbation suite, kept seed by seed.

Every episode's outcome (seed, success, length, takeovers) is kept, so two policies
evaluated on the same seeds can be compared pair by pair (apo_core/statistics.py). The
summary per task × suite is the success rate with a Wilson 95% interval, the mean episode
length and, when the policy is deployed with the simulated human watching, the
intervention rate (takeovers per episode and the share of steps the human acted).

Seeds: evaluation.seed + i (validation: the promote gate and any setting chosen) or
evaluation.test_seed + i (reported tables), both far from the collection seeds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from apo_core.actors import Actor
from apo_core.config import ApoConfig
from apo_core.envs import process_env, process_envs
from apo_core.envs.base import Observation, RobotEnv
from apo_core.human import ScriptedExpert, SimulatedHuman
from apo_core.labels import ActedBy
from apo_core.policy.actor import VlaActor
from apo_core.recording.collector import play_episode
from apo_core.statistics import wilson_interval

NO_PERTURBATION = "none"
SeedSplit = str  # "validation" | "test"


@dataclass(frozen=True)
class EpisodeOutcome:
    seed: int
    success: bool
    length: int
    takeovers: int
    human_steps: int


@dataclass(frozen=True)
class EvalResult:
    task: str
    suite: str
    outcomes: tuple[EpisodeOutcome, ...]
    watched: bool = False  # the simulated human was watching (intervention rate known)

    @property
    def episodes(self) -> int:
        return len(self.outcomes)

    @property
    def successes(self) -> int:
        return sum(o.success for o in self.outcomes)

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes

    @property
    def mean_length(self) -> float:
        return float(np.mean([o.length for o in self.outcomes]))

    @property
    def takeovers_per_episode(self) -> float | None:
        return sum(o.takeovers for o in self.outcomes) / self.episodes if self.watched else None

    @property
    def human_step_share(self) -> float | None:
        return sum(o.human_steps for o in self.outcomes) / sum(o.length for o in self.outcomes) if self.watched else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    def to_dict(self) -> dict:
        low, high = self.interval
        return {
            "task": self.task, "suite": self.suite, "episodes": self.episodes, "successes": self.successes,
            "success_rate": self.success_rate, "ci95_low": low, "ci95_high": high, "mean_length": self.mean_length,
            "takeovers_per_episode": self.takeovers_per_episode, "human_step_share": self.human_step_share,
            "outcomes": [asdict(o) for o in self.outcomes],
        }


def evaluate_actor(
    env: RobotEnv,
    actor: Actor,
    seeds: Sequence[int],
    *,
    suite: str = NO_PERTURBATION,
    human: SimulatedHuman | None = None,
    on_episode: Callable[[EpisodeOutcome], None] | None = None,
) -> EvalResult:
    """Play one episode per seed and keep each outcome."""
    outcomes = []
    for seed in seeds:
        played = play_episode(env, actor, human, seed=int(seed), source="interaction")
        outcome = EpisodeOutcome(
            seed=int(seed), success=played.success, length=len(played), takeovers=played.takeovers,
            human_steps=int(np.sum(played.acted_by == ActedBy.HUMAN)),
        )
        outcomes.append(outcome)
        if on_episode is not None:
            on_episode(outcome)
    return EvalResult(task=env.task, suite=suite, outcomes=tuple(outcomes), watched=human is not None)


def evaluate_lockstep(
    envs: Sequence[RobotEnv],
    actor: VlaActor,
    seeds: Sequence[int],
    *,
    suite: str = NO_PERTURBATION,
    on_episode: Callable[[EpisodeOutcome], None] | None = None,
) -> EvalResult:
    """The same episodes as :func:`evaluate_actor` (policy alone), played in lockstep on
    ``len(envs)`` copies of one world with ONE batched decode per tick for the episodes
    whose chunk is spent (``actor.plan_batch``); the others replay their chunk open-loop.

    Each env takes the next seed as soon as its episode ends; outcomes come back in seed
    order. The envs may be built without rendering: an image policy then renders only the
    episodes that decide (every H steps). On a CPU the decode, not the physics, is the
    cost of a state-only policy's step, so a batch of 16 plays ~5x more steps per second.
    """
    pending = [int(seed) for seed in reversed(seeds)]
    running: dict[int, list] = {}  # env slot -> [seed, observation, steps so far, the chunk's actions left]
    finished: dict[int, EpisodeOutcome] = {}

    def start(slot: int) -> None:
        if pending:
            seed = pending.pop()
            running[slot] = [seed, envs[slot].reset(seed), 0, deque()]

    def observed(slot: int) -> Observation:
        observation = running[slot][1]
        if actor.needs_image and observation.image.size == 0:
            observation = replace(observation, image=envs[slot].render_image())
        return observation

    for slot in range(len(envs)):
        start(slot)
    while running:
        deciding = [slot for slot in running if not running[slot][3]]
        if deciding:
            for slot, chunk in zip(deciding, actor.plan_batch([observed(slot) for slot in deciding])):
                running[slot][3].extend(chunk)
        for slot in list(running):
            episode = running[slot]
            outcome = envs[slot].step(episode[3].popleft())
            episode[1], episode[2] = outcome.observation, episode[2] + 1
            if outcome.success or outcome.truncated:
                seed = episode[0]
                finished[seed] = EpisodeOutcome(seed=seed, success=outcome.success, length=episode[2],
                                                takeovers=0, human_steps=0)
                del running[slot]
                if on_episode is not None:
                    on_episode(finished[seed])
                start(slot)
    return EvalResult(task=envs[0].task, suite=suite, outcomes=tuple(finished[int(seed)] for seed in seeds))


@dataclass(frozen=True)
class EvalChunk:
    """Some seeds of one task × suite: the unit of work a worker evaluates."""

    task: str
    suite: str
    seeds: tuple[int, ...]


def evaluation_seeds(config: ApoConfig, suite: str, split: SeedSplit = "validation",
                     episodes: int | None = None) -> list[int]:
    """The seeds of one suite: the same for every policy, so results pair up seed by seed."""
    count = episodes or (config.evaluation.episodes if suite == NO_PERTURBATION else config.evaluation.perturbed_episodes)
    start = config.evaluation.seed if split == "validation" else config.evaluation.test_seed
    return list(range(start, start + count))


def evaluation_chunks(config: ApoConfig, *, tasks: list[str] | None = None, suites: list[str] | None = None,
                      episodes: int | None = None, split: SeedSplit = "validation",
                      chunk_episodes: int | None = None) -> list[EvalChunk]:
    """Every task × suite's seeds, cut into chunks of at most ``chunk_episodes`` (default
    cluster.eval_chunk_episodes). The chunks are the same whether they run here one after
    another or on several workers at once, so the outcomes are identical either way."""
    size = chunk_episodes or config.cluster.eval_chunk_episodes
    chunks = []
    for task in tasks or config.env.tasks:
        for suite in suites or [NO_PERTURBATION]:
            seeds = evaluation_seeds(config, suite, split, episodes)
            chunks += [EvalChunk(task, suite, tuple(seeds[i : i + size])) for i in range(0, len(seeds), size)]
    return chunks


def _perturbation(config: ApoConfig, chunk: EvalChunk):
    return None if chunk.suite == NO_PERTURBATION else config.perturbation(chunk.suite)


def chunk_envs(config: ApoConfig, chunk: EvalChunk) -> list[RobotEnv]:
    """The worlds a policy plays one chunk on, ``evaluation.lockstep_envs`` at most, owned
    by this process (:mod:`apo_core.envs.pool`: built on first use, then reused). They do
    not render each step: a policy renders when it decides, the expert reads no pixels."""
    return process_envs(chunk.task, config.env, _perturbation(config, chunk), render=False,
                        count=min(config.evaluation.lockstep_envs, len(chunk.seeds)))


def play_chunk(
    config: ApoConfig,
    make_actor: Callable[[RobotEnv], Actor],
    chunk: EvalChunk,
    *,
    with_human: bool = False,
    on_episode: Callable[[EpisodeOutcome], None] | None = None,
) -> EvalResult:
    """Play one chunk on this process's envs (built once, :mod:`apo_core.envs.pool`).

    A policy acting alone plays ``evaluation.lockstep_envs`` episodes at a time
    (:func:`evaluate_lockstep`), rendering only when it decides. With the human watching,
    episodes are played one by one in a world that renders every step.
    """
    if with_human:
        env = process_env(chunk.task, config.env, _perturbation(config, chunk))
        human = SimulatedHuman(ScriptedExpert(env), env, config.takeover)
        return evaluate_actor(env, make_actor(env), chunk.seeds, suite=chunk.suite, human=human, on_episode=on_episode)
    envs = chunk_envs(config, chunk)
    actor = make_actor(envs[0])
    if hasattr(actor, "plan_batch"):
        return evaluate_lockstep(envs, actor, chunk.seeds, suite=chunk.suite, on_episode=on_episode)
    return evaluate_actor(envs[0], actor, chunk.seeds, suite=chunk.suite, on_episode=on_episode)


def merge_chunks(results: Sequence[EvalResult]) -> list[EvalResult]:
    """Chunk results back into one result per task × suite (outcomes in chunk order)."""
    merged: dict[tuple[str, str], EvalResult] = {}
    for result in results:
        key = (result.task, result.suite)
        if key in merged:
            earlier = merged[key]
            result = EvalResult(result.task, result.suite, earlier.outcomes + result.outcomes,
                                watched=earlier.watched)
        merged[key] = result
    return list(merged.values())


def evaluate(
    config: ApoConfig,
    make_actor: Callable[[RobotEnv], Actor],
    *,
    tasks: list[str] | None = None,
    suites: list[str] | None = None,
    episodes: int | None = None,
    split: SeedSplit = "validation",
    with_human: bool = False,
    on_episode: Callable[[EpisodeOutcome], None] | None = None,
) -> list[EvalResult]:
    """Evaluate on each task × suite ("none" = unperturbed) on the seeds of ``split``, here.

    Episodes: ``episodes`` if given, else evaluation.episodes unperturbed and
    evaluation.perturbed_episodes per perturbation suite. The chunks are those a fleet
    evaluates in parallel (:func:`evaluation_chunks`), played one after another.
    """
    chunks = evaluation_chunks(config, tasks=tasks, suites=suites, episodes=episodes, split=split)
    return merge_chunks([play_chunk(config, make_actor, chunk, with_human=with_human,
                                        on_episode=on_episode) for chunk in chunks])
