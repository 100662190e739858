"""The same round, serial versus fanned out on Ray; and how evaluation scales with workers.

    .venv/bin/python benchmarks/fanout.py [--config my.yaml] [--robots 2] [--eval-episodes 200]

Bootstraps once (not timed, every step in this process), copies the workdir twice, then
runs one `lifelong-round` flow on each copy under the real Prefect engine: with
``cluster.engine: local`` (every step here, one after another) and with ``engine: ray``
(a local Ray with 2 CPUs started by the run, the robots collecting in parallel and the
evaluation in chunks). Both rounds collect the same episodes (the fleet's seeds do not
depend on where it runs) and evaluate the same seeds. Goals: wall-time ratio Ray / serial
<= 0.6; Ray's start plus its per-task cost <= 5% of the round.

Then evaluation alone, the round's model on ``--eval-episodes`` validation seeds in chunks
of cluster.eval_chunk_episodes: in this process, on Ray with 1 worker, and with 2 workers
(episodes per second), to project the scaling to a cluster. Writes
benchmarks/results/fanout.json; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import RESULTS, report  # noqa: E402

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def config_file(work: Path, args, engine: str, num_cpus: int = 2) -> Path:
    path = work / f"fanout-{engine}-{num_cpus}.yaml"
    base = Path(args.config).read_text() if args.config else ""
    path.write_text(base + f"\ncollect: {{robots: {args.robots}}}\n"
                    f"cluster: {{engine: {engine}, num_cpus: {num_cpus}}}\n")
    return path


def timed(function, *arguments) -> float:
    start = time.perf_counter()
    function(*arguments)
    return time.perf_counter() - start


def ray_costs(config_path: Path) -> tuple[float, float]:
    """Seconds to start a local Ray (2 CPUs), and Prefect + Ray's cost of one task (no-op)."""
    from prefect import flow, task

    from apo_core.config import load_config
    from tasks.fleet import Fleet, ray_cluster

    @task(name="no-op")
    def no_op(i: int) -> int:
        return i

    config = load_config(config_path)
    costs: dict[str, float] = {}

    @flow(name="ray-costs")
    def measure():
        start = time.perf_counter()
        with ray_cluster(config):
            costs["start"] = time.perf_counter() - start
            with Fleet(config) as fleet:
                fleet.map(no_op, [dict(i=i) for i in range(4)])  # warm the workers
                start = time.perf_counter()
                fleet.map(no_op, [dict(i=i) for i in range(40)])
                costs["task"] = (time.perf_counter() - start) / 40 * 2  # 2 workers run them side by side
    measure()
    return costs["start"], costs["task"]


def evaluation_rate(config_path: Path, model_dir: Path, episodes: int) -> float:
    """Episodes per second of one model's evaluation on ``episodes`` validation seeds."""
    from prefect import flow

    from apo_core.config import load_config, with_overrides
    from apo_core.evaluate import evaluation_chunks
    from tasks.fleet import Fleet, ray_cluster
    from tasks.round_tasks import evaluate_chunk

    config = with_overrides(load_config(config_path), {"evaluation": {"episodes": episodes}})
    chunks = evaluation_chunks(config, tasks=config.env.tasks[:1])
    workers = config.cluster.num_cpus if config.cluster.engine == "ray" else 1

    @flow(name="evaluation-rate")
    def run() -> float:
        with ray_cluster(config), Fleet(config) as fleet:
            # Warm every worker (imports, envs, policy copy: ~20 s each), not just one.
            fleet.map(evaluate_chunk, [dict(config=config, model_dir=model_dir, chunk=c) for c in chunks[:workers]])
            start = time.perf_counter()
            fleet.map(evaluate_chunk, [dict(config=config, model_dir=model_dir, chunk=c) for c in chunks])
            return episodes / (time.perf_counter() - start)
    return run()


def evaluation_rates(args, work: Path) -> dict[str, float]:
    """Episodes per second of the Ray round's model: in this process, on 1 and on 2 Ray workers."""
    from apo_core.config import load_config
    from apo_core.layout import round_dir

    ray_config = config_file(work, args, "ray")
    model = round_dir(load_config(ray_config, {"paths": {"workdir": str(work / "ray")}}), 1) / "model"
    return {"this process": evaluation_rate(config_file(work, args, "local"), model, args.eval_episodes),
            "Ray, 1 worker": evaluation_rate(config_file(work, args, "ray", 1), model, args.eval_episodes),
            "Ray, 2 workers": evaluation_rate(ray_config, model, args.eval_episodes)}


def report_rates(args, work: Path) -> None:
    rates = evaluation_rates(args, work)
    report("fanout-rates", ["where", "episodes/s", "speed-up"],
           [[where, round(rate, 2), f"x{rate / rates['this process']:.2f}"] for where, rate in rates.items()],
           {"evaluation_episodes_per_second": rates, "eval_episodes": args.eval_episodes})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a config layered over the defaults (default: none)")
    parser.add_argument("--robots", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--rates-only", action="store_true",
                        help="only the evaluation rates, on the round-1 model of an earlier run (fanout-rates.json)")
    args = parser.parse_args()
    from flows.lifelong import bootstrap, lifelong_round

    work = RESULTS / "fanout-work"
    if args.rates_only:
        report_rates(args, work)
        return
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    serial_config, ray_config = config_file(work, args, "local"), config_file(work, args, "ray")
    started = time.perf_counter()
    bootstrap(str(serial_config), str(work / "base"))
    shutil.copytree(work / "base", work / "serial")
    shutil.copytree(work / "base", work / "ray")

    serial = timed(lifelong_round, str(serial_config), str(work / "serial"))
    on_ray = timed(lifelong_round, str(ray_config), str(work / "ray"))  # Ray's start included
    ray_start, per_task = ray_costs(ray_config)
    from apo_core.config import load_config
    from apo_core.evaluate import evaluation_chunks
    from apo_core.loop import round_suites

    config = load_config(ray_config)
    tasks_per_round = len(config.collect.robots) + len(evaluation_chunks(config, tasks=config.env.tasks[:1],
                                                                         suites=round_suites(config)))
    overhead = ray_start + tasks_per_round * per_task

    rates = evaluation_rates(args, work)
    rows = [["round, serial (engine: local)", round(serial, 1), "-"],
            ["round, Ray with 2 workers", round(on_ray, 1), f"ratio {on_ray / serial:.2f} (goal <= 0.6)"],
            ["Ray start (local, 2 CPUs)", round(ray_start, 1), f"{ray_start / on_ray:.1%} of the Ray round"],
            [f"per Prefect task on Ray x {tasks_per_round} tasks", round(tasks_per_round * per_task, 1),
             f"{per_task:.2f} s each"],
            ["Ray start + task overhead", round(overhead, 1), f"{overhead / on_ray:.1%} of the round (goal <= 5%)"]]
    rows += [[f"evaluation, {where}", f"{rate:.2f} episodes/s", f"x{rate / rates['this process']:.2f}"]
             for where, rate in rates.items()]
    report("fanout", ["what", "seconds", "note"], rows,
           {"serial_seconds": serial, "ray_seconds": on_ray, "ratio": on_ray / serial, "ray_start_seconds": ray_start,
            "per_task_seconds": per_task, "overhead_share": overhead / on_ray, "evaluation_episodes_per_second": rates,
            "robots": args.robots, "eval_episodes": args.eval_episodes, "config": args.config,
            "wall_seconds": time.perf_counter() - started})


if __name__ == "__main__":
    main()
