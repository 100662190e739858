"""The recorder's on-disk contract: round trip, write-once, validation that names the file."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from apo_core.actors import RandomActor
from apo_core.errors import ApoError, EpisodeFormatError
from apo_core.human import ScriptedExpert, SimulatedHuman
from apo_core.recording.collector import collect_episodes
from apo_core.recording.episodes import METADATA_KEY, read_episode
from apo_core.recording.store import EpisodeStore


@pytest.fixture(scope="module")
def collected(env_for, config, tmp_path_factory):
    env = env_for("push")
    store = EpisodeStore.for_writing(tmp_path_factory.mktemp("episodes"))
    summary = collect_episodes(
        env, RandomActor(4), SimulatedHuman(ScriptedExpert(env), env, config.takeover), store,
        collection="round-0004", until=2, base_seed=100, source="interaction", policy_round=3, robot_id="robot-a", fps=20,
    )
    return store, summary


def test_round_trip_keeps_every_field(collected):
    store, summary = collected
    assert summary.episodes == 2 and len(store) == 2
    episode = read_episode(summary.paths[0])
    meta = episode.meta
    assert meta.episode_id == "robot-a.round-0004.push.e000000"
    assert (meta.seed, meta.policy_round, meta.source, meta.task) == (100, 3, "interaction", "push")
    assert meta.n_steps == len(episode) == len(episode.images)
    assert episode.images.shape[1:] == (64, 64, 3) and episode.images.dtype == np.uint8
    assert episode.actions.shape == (len(episode), 4)
    assert set(episode.acted_by.tolist()) <= {0, 1}
    table = pq.read_table(summary.paths[0])
    assert table.column("complementary_info.is_intervention").to_pylist() == episode.is_intervention.tolist()
    assert table.column("next.done").to_pylist()[-1] is True


def test_collection_resumes_without_replaying(collected, env_for, config):
    store, summary = collected
    env = env_for("push")
    more = collect_episodes(
        env, RandomActor(4), None, store, collection="round-0004", until=3, base_seed=100, source="interaction",
        policy_round=3, robot_id="robot-a", fps=20,
    )
    assert more.episodes == 1 and read_episode(more.paths[0]).meta.seed == 102
    assert collect_episodes(
        env, RandomActor(4), None, store, collection="round-0004", until=3, base_seed=100, source="interaction",
        policy_round=3, robot_id="robot-a", fps=20,
    ).episodes == 0


def test_episodes_are_never_overwritten(collected):
    store, summary = collected
    episode = read_episode(summary.paths[0])
    with pytest.raises(ApoError, match="already recorded"):
        store.write(episode)
    assert not list(store.directory.glob(".*.tmp"))


def test_truncated_file_is_refused_with_its_name(collected, tmp_path):
    _, summary = collected
    broken = tmp_path / "episode-000000.parquet"
    broken.write_bytes(summary.paths[0].read_bytes()[:500])
    with pytest.raises(EpisodeFormatError, match=str(broken)):
        read_episode(broken)


def test_missing_column_and_metadata_are_named(collected, tmp_path):
    _, summary = collected
    table = pq.read_table(summary.paths[0])
    no_action = tmp_path / "no_action.parquet"
    pq.write_table(table.drop_columns(["action"]), no_action)
    with pytest.raises(EpisodeFormatError, match=r"missing columns \['action'\]"):
        read_episode(no_action)
    no_meta = tmp_path / "no_meta.parquet"
    pq.write_table(table.replace_schema_metadata({}), no_meta)
    with pytest.raises(EpisodeFormatError, match=METADATA_KEY.decode()):
        read_episode(no_meta)


def test_stale_partial_write_is_invisible_and_cleaned(tmp_path):
    (tmp_path / ".episode-000000.parquet.tmp").write_bytes(b"half an episode")
    store = EpisodeStore.for_writing(tmp_path)
    assert len(store) == 0 and store.next_index() == 0
    assert not (tmp_path / ".episode-000000.parquet.tmp").exists()


def test_only_the_temporary_files_of_dead_writers_are_cleaned(tmp_path):
    """Writers share a directory: a writer that opens it never deletes a live writer's file."""
    import os
    import subprocess

    from apo_core.recording.store import HOST_TAG

    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = tmp_path / f".episode-000000.parquet.{HOST_TAG}-{finished.pid}-0a1b2c3d.tmp"
    live = tmp_path / f".episode-000001.parquet.{HOST_TAG}-{os.getpid()}-0a1b2c3d.tmp"
    other_host = tmp_path / ".episode-000002.parquet.otherhost-1-0a1b2c3d.tmp"
    for path in (dead, live, other_host):
        path.write_bytes(b"part of an episode")
    EpisodeStore.for_writing(tmp_path)
    assert not dead.exists() and live.exists() and other_host.exists()


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ApoError, match="cannot create the episode directory"):
        EpisodeStore.for_writing(blocker / "episodes")
