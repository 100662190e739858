"""Evaluation: N seeded episodes per task and per perturbation suite.

Reports the success rate with a Wilson 95% interval, the mean episode length and, when
the policy is deployed with the simulated human watching, the intervention rate
(takeovers per episode and the share of steps the human acted).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from apo_core.actors import Actor
from apo_core.collect import play_episode
from apo_core.config import ApoConfig
from apo_core.envs import make_env
from apo_core.envs.base import RobotEnv
from apo_core.human import ScriptedExpert, SimulatedHuman
from apo_core.labels import ActedBy

NO_PERTURBATION = "none"


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z = 1.96)."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class EvalResult:
    task: str
    suite: str
    episodes: int
    successes: int
    mean_length: float
    takeovers_per_episode: float | None
    human_step_share: float | None

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.episodes)

    def to_dict(self) -> dict:
        low, high = self.interval
        return {**asdict(self), "success_rate": self.success_rate, "ci95_low": low, "ci95_high": high}


def evaluate_actor(
    env: RobotEnv,
    actor: Actor,
    *,
    episodes: int,
    seed: int,
    suite: str = NO_PERTURBATION,
    human: SimulatedHuman | None = None,
) -> EvalResult:
    """Play ``episodes`` seeded episodes (seeds seed, seed+1, ...) and summarise them."""
    successes, lengths, takeovers, human_steps = 0, [], 0, 0
    for index in range(episodes):
        played = play_episode(env, actor, human, seed=seed + index, source="interaction")
        successes += played.success
        lengths.append(len(played))
        takeovers += played.takeovers
        human_steps += int(np.sum(played.acted_by == ActedBy.HUMAN))
    watched = human is not None
    return EvalResult(
        task=env.task,
        suite=suite,
        episodes=episodes,
        successes=successes,
        mean_length=float(np.mean(lengths)),
        takeovers_per_episode=takeovers / episodes if watched else None,
        human_step_share=human_steps / sum(lengths) if watched else None,
    )


def evaluate(
    config: ApoConfig,
    make_actor: Callable[[RobotEnv], Actor],
    *,
    tasks: list[str] | None = None,
    suites: list[str] | None = None,
    episodes: int | None = None,
    with_human: bool = False,
) -> list[EvalResult]:
    """Evaluate on each task × suite ("none" = unperturbed), with fresh envs per suite.

    Episodes: ``episodes`` if given, else evaluation.episodes unperturbed and
    evaluation.perturbed_episodes per perturbation suite.
    """
    results = []
    for task in tasks or config.env.tasks:
        for suite in suites or [NO_PERTURBATION]:
            perturbation = None if suite == NO_PERTURBATION else config.perturbation(suite)
            env = make_env(task, config.env, perturbation)
            human = SimulatedHuman(ScriptedExpert(env), env, config.takeover) if with_human else None
            results.append(
                evaluate_actor(
                    env, make_actor(env), episodes=episodes or (
                        config.evaluation.episodes if suite == NO_PERTURBATION else config.evaluation.perturbed_episodes
                    ),
                    seed=config.evaluation.seed, suite=suite, human=human,
                )
            )
    return results
