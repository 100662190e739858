"""Dataset versioning cost: add + commit + push of round 1 vs round 30 with the same
per-round data (goal: ratio <= 1.5), and the dataset's Parquet write throughput.

    .venv/bin/python benchmarks/versioning.py [--rounds 30] [--episodes-per-round 2]

Each round appends the same amount of data (copies of a few recorded episodes under new
ids) to the LeRobot dataset, then versions it with git + DVC into a local remote.
"""

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

# Run as `python benchmarks/versioning.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report  # noqa: E402

from apo_core.actors import RandomActor  # noqa: E402
from apo_core.config import load_config  # noqa: E402
from apo_core.data.dataset import append_round  # noqa: E402
from apo_core.data.round_dataset import workspace_for  # noqa: E402
from apo_core.envs import make_env  # noqa: E402
from apo_core.human import ScriptedExpert, SimulatedHuman  # noqa: E402
from apo_core.recording.collector import collect_episodes  # noqa: E402
from apo_core.recording.store import EpisodeStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--episodes-per-round", type=int, default=2)
    args = parser.parse_args()
    work = RESULTS / "versioning-work"
    shutil.rmtree(work, ignore_errors=True)
    config = load_config(None, {"paths": {"workdir": str(work)}})
    env = make_env("push", config.env)
    template = EpisodeStore.for_writing(work / "template")
    collect_episodes(env, RandomActor(4), SimulatedHuman(ScriptedExpert(env), env, config.takeover), template,
                     collection="template", until=args.episodes_per_round, base_seed=0, source="interaction",
                     policy_round=0, robot_id="bench", fps=config.env.fps)
    episodes = list(template)
    workspace = workspace_for(config).ensure()
    rows, timings = [], []
    for round_number in range(1, args.rounds + 1):
        batch = EpisodeStore.for_writing(work / "episodes" / f"round-{round_number:04d}")
        for index, episode in enumerate(episodes):
            meta = dataclasses.replace(episode.meta, episode_id=f"bench.r{round_number:04d}.e{index:03d}",
                                       episode_index=index, policy_round=round_number)
            batch.write(dataclasses.replace(episode, meta=meta))
        start = time.perf_counter()
        workspace.prepare_append()
        summary = append_round(workspace.dataset_root, round_number, [batch.directory], config.labels,
                               fps=config.env.fps)
        appended = time.perf_counter()
        workspace.commit_round(round_number)
        versioned = time.perf_counter()
        shard = sorted((workspace.dataset_root / "data").rglob("*.parquet"))[-1]
        megabytes = shard.stat().st_size / 2**20
        timings.append({"round": round_number, "append_s": appended - start, "version_s": versioned - appended,
                        "frames": summary.frames_added, "shard_mb": megabytes,
                        "write_mb_per_s": megabytes / (appended - start)})
        print(f"round {round_number}: append {appended - start:.1f}s, add+commit+push {versioned - appended:.1f}s",
              flush=True)
    first, last = timings[0], timings[-1]
    for t in (first, last):
        rows.append([t["round"], round(t["append_s"], 2), round(t["version_s"], 2), t["frames"],
                     round(t["shard_mb"], 2), round(t["write_mb_per_s"], 2)])
    ratio = last["version_s"] / first["version_s"]
    rows.append([f"ratio {args.rounds}/1", "", round(ratio, 2), "", "", ""])
    report("versioning", ["round", "append s", "add+commit+push s", "frames", "new shard MB", "write MB/s"], rows,
           {"rounds": timings, "version_time_ratio": ratio, "goal": "<= 1.5"})


if __name__ == "__main__":
    main()
