"""The robot side of the loop: deploy a stored round, act with a human watching, record.

    deploy champion -> collect (the human takes over when the robot heads for failure)

Each robot of the fleet (``collect.robots``) records into its own episode directory on its
own seeds (:meth:`apo_core.config.CollectConfig.round_seed`), so robots never share a file
or an index and their episodes can be told apart in every later round. A collection cut
off by a crash resumes where it stopped: the episodes on disk are kept, the next seed is
played, none is lost or recorded twice. Nothing here imports Prefect or Ray.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apo_core.actors import RandomActor
from apo_core.config import ApoConfig
from apo_core.config.world import ADHOC_SEEDS_PER_ROBOT
from apo_core.envs import make_env, process_env
from apo_core.envs.perturbations import world_variation
from apo_core.errors import ApoError
from apo_core.human import ScriptedExpert, SimulatedHuman
from apo_core.policy import cached_policy, load_policy
from apo_core.policy.actor import VlaActor
from apo_core.recording.collector import EMPTY_SUMMARY, CollectionSummary, collect_episodes, recorded_summary
from apo_core.recording.episodes import Episode
from apo_core.recording.locks import robot_lock
from apo_core.recording.store import EpisodeStore
from apo_core.registry.object_store import NotFound
from apo_core.registry.store import registry_for
from apo_core.workdir import (
    EXPERT_COLLECTION,
    collection_dir,
    deployed_dir,
    expert_dir,
    interaction_dir,
    next_round,
    policy_collection,
    round_interaction_dirs,
    round_name,
)

OnEpisode = Callable[[Episode, Path], None]


def record_demonstrations(config: ApoConfig, task: str, on_episode: OnEpisode | None = None) -> CollectionSummary:
    """The scripted expert's demonstrations of ``task`` (round 0's data), resumable."""
    env = process_env(task, config.env)
    robot = config.collect.robots[0]
    with robot_lock(config.paths.workdir, robot):
        return collect_episodes(
            env, ScriptedExpert(env), None, EpisodeStore.for_writing(expert_dir(config, task)), collection=EXPERT_COLLECTION,
            until=config.collect.expert_demos_per_task, base_seed=config.collect.seed, source="expert",
            policy_round=None, robot_id=robot, fps=config.env.fps, on_episode=on_episode,
        )


def deploy_champion(config: ApoConfig) -> tuple[int, Path]:
    """Deploy the champion round (:func:`deploy_round`); returns (round, local model dir)."""
    champion, _ = registry_for(config).champion()
    if champion is None:
        raise ApoError(f"{config.registry_url}: no champion yet; run the bootstrap flow first")
    return champion["round"], deploy_round(config, champion["round"])


def deploy_round(config: ApoConfig, number: int) -> Path:
    """Download (and verify) round N from the model store; returns the local model dir.

    A copy deployed earlier is re-checked against the round's manifest and downloaded again
    if any file differs. Several robots may deploy at once on one machine: each downloads
    into its own temporary directory, and the first to finish puts it in place.
    """
    registry = registry_for(config)
    try:
        registry.manifest(number)
    except NotFound:
        raise ApoError(f"round {number}: not in the model store {config.registry_url} "
                       f"(`apo rounds` lists the stored rounds)") from None
    local = deployed_dir(config, number)
    if local.exists() and not registry.matches(number, local):
        shutil.rmtree(local, ignore_errors=True)  # changed or damaged since it was deployed
    if not local.exists():
        partial = local.with_name(f"{local.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        registry.download(number, partial)
        try:
            partial.rename(local)
        except OSError:  # another robot put the same round in place first
            shutil.rmtree(partial, ignore_errors=True)
    return local


def collect_interactions(config: ApoConfig, round_number: int, policy_round: int, model_dir: Path, task: str,
                         robot: str, until: int | None = None, on_episode: OnEpisode | None = None
                         ) -> CollectionSummary:
    """``robot`` deploys the model in ``model_dir``, the simulated human takes over when
    needed, until the robot's directory for round N holds ``until`` episodes (default: the
    robot's share of the round's interactions). Returns what was recorded here."""
    env = process_env(task, config.env)
    actor = VlaActor(cached_policy(model_dir), env.instruction, name=round_name(policy_round))
    human = SimulatedHuman(ScriptedExpert(env), env, config.takeover)
    store = EpisodeStore.for_writing(interaction_dir(config, round_number, task, robot))
    until = config.collect.robot_share(robot) if until is None else until
    if until > config.collect.seeds_per_robot:
        raise ApoError(f"{store.directory}: {until} episodes exceed robot {robot}'s "
                       f"{config.collect.seeds_per_robot} seeds of round {round_number}")
    with robot_lock(config.paths.workdir, robot):
        return collect_episodes(
            env, actor, human, store, collection=round_name(round_number), until=until,
            base_seed=config.collect.round_seed(round_number, robot), source="interaction",
            policy_round=policy_round, robot_id=robot, fps=config.env.fps, on_episode=on_episode,
            varied=lambda seed: world_variation(config.collect.world_variation, seed, config.evaluation.perturbations),
        )


def collect_as_robot(config: ApoConfig, robot: str, task: str, episodes: int,
                     on_episode: OnEpisode | None = None) -> CollectionSummary:
    """A robot at work: ``episodes`` episodes, each with the champion of that moment.

    Before every episode the robot looks up the pending round (its episodes feed the next
    update) and the champion, so a newly promoted round is picked up at the next episode.
    """
    config.collect.robot_index(robot)  # an unknown robot is refused before it acts
    summary = EMPTY_SUMMARY
    for _ in range(episodes):
        number = next_round(config)
        policy_round, model_dir = deploy_champion(config)
        recorded = len(EpisodeStore(interaction_dir(config, number, task, robot)))
        summary = summary.merged(collect_interactions(config, number, policy_round, model_dir, task, robot,
                                                      until=recorded + 1, on_episode=on_episode))
    return summary


def collection_stats(config: ApoConfig, round_number: int, tasks: list[str]) -> dict:
    """Intervention statistics of every episode the fleet recorded for round N (from the data)."""
    summary = EMPTY_SUMMARY
    for directory in round_interaction_dirs(config, round_number, tasks):
        summary = summary.merged(recorded_summary(EpisodeStore(directory)))
    return summary.to_dict()


def recorded_count(config: ApoConfig, round_number: int, tasks: list[str]) -> int:
    """Episodes the fleet has recorded so far for round N (cheap: counts files)."""
    return sum(len(EpisodeStore(d)) for d in round_interaction_dirs(config, round_number, tasks))


# ----- collections outside the loop's rounds: `apo collect` --------------------------------
@dataclass(frozen=True)
class Collection:
    """Where a collection by hand goes, its name (part of every episode id), its seeds, and
    the round of the policy acting (None: the expert, random actions or a model folder)."""

    directory: Path
    name: str
    first_seed: int
    seeds: int
    policy_round: int | None


def collection_for(config: ApoConfig, policy: str, task: str, robot: str, out: Path | None = None) -> Collection:
    """The collection of ``policy`` (expert | random | a round number | a model folder) on
    ``task`` by ``robot``. Interactions by policy round N are the new data of round N + 1, on
    the robot's seeds of that round; other collections have seed blocks of their own
    (:meth:`apo_core.config.CollectConfig.adhoc_seed`). ``out`` puts the episodes elsewhere."""
    if policy.isdigit():
        number = int(policy) + 1
        return Collection(out or interaction_dir(config, number, task, robot), round_name(number),
                          config.collect.round_seed(number, robot), config.collect.seeds_per_robot, int(policy))
    actor = policy if policy in ("expert", "random") else "policy"
    name = policy_collection(policy)
    return Collection(out or collection_dir(config, name, task), name, config.collect.adhoc_seed(actor, robot),
                      ADHOC_SEEDS_PER_ROBOT, None)


def actor_factory(config: ApoConfig, policy: str) -> Callable[[object], object]:
    """An actor for a world, from ``policy``: expert | random | a round number (that round of
    the model store, deployed verified) | a model folder (loaded once, for every world)."""
    if policy == "expert":
        return ScriptedExpert
    if policy == "random":
        return lambda env: RandomActor(env.action_dim)
    directory = deploy_round(config, int(policy)) if policy.isdigit() else Path(policy)
    try:
        model = load_policy(directory)
    except FileNotFoundError as error:
        raise ApoError(str(error)) from None
    return lambda env: VlaActor(model, env.instruction, name=f"vla:{directory.name}")


def collect_by_hand(config: ApoConfig, *, task: str, episodes: int, policy: str, robot: str, out: Path | None = None,
                    perturbation: str | None = None, human: bool = True,
                    on_episode: OnEpisode | None = None) -> tuple[CollectionSummary, Path]:
    """``episodes`` more episodes of ``policy`` on ``task`` as ``robot``, holding its writer
    lock, with the simulated human watching (unless ``human`` is false or the expert acts);
    returns what was recorded and where."""
    if episodes < 1:
        raise ApoError(f"--episodes must be >= 1, got {episodes}")
    config.collect.robot_index(robot)  # an unknown robot is refused here
    collection = collection_for(config, policy, task, robot, out)
    with robot_lock(config.paths.workdir, robot):
        recorded = len(EpisodeStore(collection.directory))
        if recorded + episodes > collection.seeds:
            raise ApoError(f"{collection.directory}: {recorded} episodes recorded + {episodes} more would exceed the "
                           f"{collection.seeds} seeds of robot {robot} for this collection")
        env = make_env(task, config.env, config.perturbation(perturbation) if perturbation else None)
        actor = actor_factory(config, policy)(env)
        source = "expert" if policy == "expert" else "interaction"
        overseer = SimulatedHuman(ScriptedExpert(env), env, config.takeover) if human and source != "expert" else None
        store = EpisodeStore.for_writing(collection.directory)
        summary = collect_episodes(env, actor, overseer, store, collection=collection.name, episodes=episodes,
                                   base_seed=collection.first_seed, source=source,
                                   policy_round=collection.policy_round, robot_id=robot, fps=config.env.fps,
                                   perturbation=perturbation, on_episode=on_episode)
    return summary, store.directory
