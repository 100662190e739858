"""The robots meet the world as it varies (collect.world_variation): a share of interaction
episodes is played in a seeded variation, never an evaluation suite's exact settings,
recorded with the episode and in the dataset's lineage, and the world put back after."""

import numpy as np
import pytest

from apo_core.config import PerturbationConfig
from apo_core.config.world import WorldVariationConfig
from apo_core.envs.perturbations import world_variation

SUITES = [PerturbationConfig(name="lighting", kind="lighting", magnitude=0.5, seed=3)]


def test_a_share_of_seeds_varies_each_the_same_way_every_time():
    variation = WorldVariationConfig(share=0.5)
    drawn = [world_variation(variation, seed, SUITES) for seed in range(400)]
    assert 150 < sum(d is not None for d in drawn) < 250
    assert drawn == [world_variation(variation, seed, SUITES) for seed in range(400)]
    kinds = {d.kind for d in drawn if d is not None}
    assert kinds == {"object_shift", "table_color", "lighting", "camera"}
    for d in drawn:
        if d is not None:
            bound = getattr(variation, d.kind)
            assert 0.2 * bound - 1e-4 <= d.magnitude <= bound and d.name == f"varied:{d.kind}:{d.magnitude}:{d.seed}"
            assert (d.kind, d.magnitude, d.seed) != ("lighting", 0.5, 3)


def test_no_share_or_no_bound_leaves_the_world_as_built():
    assert world_variation(WorldVariationConfig(), 7, SUITES) is None
    nothing = WorldVariationConfig(share=1.0, object_shift=0, table_color=0, lighting=0, camera=0)
    assert world_variation(nothing, 7, SUITES) is None


@pytest.mark.slow
def test_a_varied_episode_is_played_recorded_and_the_world_put_back(config, tmp_path):
    """Every episode varied by table colour: its frames differ from the plain world's on
    the same seed, the variation is its recorded perturbation and the dataset's lineage
    entry; afterwards the env renders the plain world again."""
    from apo_core.actors import RandomActor
    from apo_core.data.dataset import append_round
    from apo_core.data.lineage import build_record
    from apo_core.data.versioning import DatasetVersion
    from apo_core.envs import make_env
    from apo_core.human import ScriptedExpert, SimulatedHuman
    from apo_core.recording.collector import collect_episodes
    from apo_core.recording.store import EpisodeStore

    env = make_env("push", config.env)
    env.reset(11)
    plain = env.render_image()
    colour = WorldVariationConfig(share=1.0, object_shift=0, lighting=0, camera=0)
    store = EpisodeStore.for_writing(tmp_path / "varied")
    collect_episodes(env, RandomActor(4), SimulatedHuman(ScriptedExpert(env), env, config.takeover), store,
                     collection="round-0001", until=2, base_seed=11, source="interaction", policy_round=0,
                     robot_id="r", fps=20, varied=lambda seed: world_variation(colour, seed, SUITES))
    episodes = list(store)
    names = [world_variation(colour, 11 + i, SUITES).name for i in range(2)]
    assert [e.meta.perturbation for e in episodes] == names and all(n.startswith("varied:table_color:") for n in names)
    assert np.abs(episodes[0].images[0].astype(int) - plain.astype(int)).mean() > 1.0  # another table colour
    assert env.perturbation is None
    env.reset(11)  # the world as built again (a few pixels of the hand may differ after a played episode)
    assert np.abs(env.render_image().astype(int) - plain.astype(int)).mean() < 0.05

    append_round(tmp_path / "dataset", 1, [store.directory], config.labels, fps=20)
    record = build_record(tmp_path / "dataset", DatasetVersion(round=1, md5="md5", commit="commit", tag="dataset-round-0001"), config)
    assert sorted(e["world"] for e in record["episodes"]) == sorted(names)
