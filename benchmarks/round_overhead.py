"""Share of a round's wall time spent in Prefect, DVC and S3 versus the real work
(collect, train, evaluate). Goal: overhead <= 10%.

    .venv/bin/python benchmarks/round_overhead.py [--config my.yaml]

Bootstraps once (not timed), then runs one `lifelong-round` flow under the real Prefect
engine (ephemeral API), every step in this process (``cluster.engine: local``; the fan-out
on Ray is benchmarks/fanout.py), while timing every step of apo_core. Without ``--config`` the
dataset's DVC remote and the model registry live in S3: a moto server over real HTTP on
127.0.0.1, in this process. Writing the LeRobot dataset (labelling + Parquet) is neither
orchestration nor versioning: it is reported on its own line, and the overhead is given
with and without it. Prefect's share is the flow's wall time minus the time in the steps.
"""

import argparse
import logging
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

# Run as `python benchmarks/round_overhead.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report  # noqa: E402

from flows.cli.loop import prefect_defaults  # noqa: E402

prefect_defaults()  # as `apo run` sets Prefect up: logs at INFO to its API, none on the console

from apo_core.data import round_dataset  # noqa: E402
from apo_core.loop import learner, robots, update  # noqa: E402
from flows.lifelong import bootstrap, lifelong_round  # noqa: E402

COLLECT, TRAIN, EVALUATE = "collect", "train", "evaluate"
DATASET = "dataset write (label + LeRobot Parquet)"
VERSIONING = "DVC + git (add, commit, tag, push)"
MODEL_STORE = "model store (download, publish, promote)"
PREFECT = "Prefect (flow, tasks, events, artifacts)"
TIMED = [  # (module, function, category); append_round runs inside build_dataset
    (robots, "collect_interactions", COLLECT),
    (update, "train_round", TRAIN),
    (learner, "evaluate_model_on_chunk", EVALUATE),
    (learner, "build_dataset", VERSIONING),
    (round_dataset, "append_round", DATASET),
    (robots, "deploy_champion", MODEL_STORE),
    (learner, "publish_round", MODEL_STORE),
    (learner, "promote_if_better", MODEL_STORE),
]
WORK = {COLLECT, TRAIN, EVALUATE}


def s3_config(work: Path) -> Path:
    """A config whose DVC remote and registry are buckets of a local moto S3 server."""
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per S3 request otherwise
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="apo")
    path = work / "s3.yaml"
    path.write_text(
        f'dataset: {{remote: "s3://apo/dvc", s3_endpoint_url: "{endpoint}"}}\n'
        f'registry: {{url: "s3://apo/models", s3_endpoint_url: "{endpoint}"}}\n'
        "cluster: {engine: local}\n"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="default: embedded defaults with S3 on a local moto server")
    args = parser.parse_args()
    work = RESULTS / "round-overhead-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config_path = args.config or str(s3_config(work))
    bootstrap(config_path, str(work))

    spent: dict[str, float] = defaultdict(float)
    for module, name, category in TIMED:
        original = getattr(module, name)

        def timed(*a, _original=original, _category=category, **k):
            start = time.perf_counter()
            try:
                return _original(*a, **k)
            finally:
                spent[_category] += time.perf_counter() - start

        setattr(module, name, timed)
    start = time.perf_counter()
    lifelong_round(config_path, str(work))
    total = time.perf_counter() - start
    spent[VERSIONING] -= spent[DATASET]
    spent[PREFECT] = total - sum(spent.values())

    overhead = spent[PREFECT] + spent[VERSIONING] + spent[MODEL_STORE]
    rows = [[name, round(seconds, 1), f"{seconds / total:.1%}"] for name, seconds in spent.items()]
    rows.append(["overhead: Prefect + DVC/git + model store", round(overhead, 1), f"{overhead / total:.1%}"])
    rows.append(["... and the dataset write counted as overhead too", round(overhead + spent[DATASET], 1),
                 f"{(overhead + spent[DATASET]) / total:.1%}"])
    report("round_overhead", ["part of the round", "seconds", "share"], rows,
           {"round_seconds": total, "overhead_share": overhead / total,
            "overhead_share_with_dataset_write": (overhead + spent[DATASET]) / total,
            "storage": "moto S3 over HTTP" if args.config is None else args.config, "goal": "<= 10%"})


if __name__ == "__main__":
    main()
