"""The same round, serial versus fanned out on Ray; and how evaluation scales with workers.

    .venv/bin/python benchmarks/fanout.py [--config my.yaml] [--robots 2] [--eval-episodes 200]
        [--reuse-bootstrap] [--pairs 1] [--no-rates | --rates-only]

Bootstraps once (not timed, every step in this process), copies the workdir for each
round, then runs one `lifelong-round` flow on each copy under the real Prefect engine: with
``cluster.engine: local`` (every step here, one after another) and with ``engine: ray``
(a local Ray with 2 CPUs: the robots collect in parallel, the evaluation runs in chunks).
Both rounds collect the same episodes (the fleet's seeds do not depend on where it runs)
and evaluate the same seeds. With ``--pairs N`` the two rounds are timed N times in turn
(serial then Ray, Ray then serial, ...), the timings are their means, and the pairs' ratios
get a 95% interval.

The Ray round runs on a started cluster whose workers have built their worlds, as every
round of `apo run` after the first does (one cluster for all its rounds) and a learner on
a running cluster does; the serial round's process has built its worlds too. The start and
the warm-ups are timed apart, and the ratio is also given as if both rounds had paid them.
Goals: wall-time ratio Ray / serial <= 0.6; Ray's start plus its per-task cost <= 5% of the
round. Each round is split into its phases (collect; dataset + update, which on Ray run
side by side; evaluate; the rest: deploy, publish, promote, report), and two bounds are
given: the ratio had the learner (dataset + update) cost nothing in both rounds, and had
collection and evaluation split exactly x2 with the learner as measured.

Then evaluation alone, the round's model on ``--eval-episodes`` validation seeds in chunks
of cluster.eval_chunk_episodes: in this process, on Ray with 1 worker, and with 2 workers
(episodes per second), to project the scaling to a cluster; and in 1 plain process and 2
at once, without Ray or Prefect, which is what this machine itself gives two processes. Writes
benchmarks/results/fanout.json; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

# Run as `python benchmarks/fanout.py`: this folder on the path lets it import its sibling `common`.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, report  # noqa: E402

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
PLAIN_TIMEOUT_SECONDS = 600  # a plain evaluation process that neither reports nor fails by then: stop


def config_file(work: Path, args, engine: str, num_cpus: int = 2) -> Path:
    path = work / f"fanout-{engine}-{num_cpus}.yaml"
    base = Path(args.config).read_text() if args.config else ""
    path.write_text(base + f"\ncollect: {{robots: {args.robots}}}\n"
                    f"cluster: {{engine: {engine}, num_cpus: {num_cpus}}}\n")
    return path


# The round's phases, one after another (the rest: deploy, publish, promote, report) ...
PHASES = {"collect": ("tasks.robot_tasks", "collect_round"),
          "dataset + update": ("tasks.round_tasks", "dataset_and_update"),
          "evaluate": ("tasks.round_tasks", "evaluate_round")}
# ... and, inside "dataset + update", the dataset (on Ray the update runs beside it)
DATASET = {"of which dataset (label, write, version)": ("tasks.round_tasks", "version_dataset")}


@contextmanager
def phases_timed(seconds: dict[str, float]):
    """Add the wall time of each phase of a round (the flows call them in this process) to ``seconds``."""
    originals = {}
    for phase, (module_name, name) in {**PHASES, **DATASET}.items():
        module = importlib.import_module(module_name)
        originals[module, name] = original = getattr(module, name)

        def timed_phase(*a, _original=original, _phase=phase, **k):
            start = time.perf_counter()
            try:
                return _original(*a, **k)
            finally:
                seconds[_phase] = seconds.get(_phase, 0.0) + time.perf_counter() - start

        setattr(module, name, timed_phase)
    try:
        yield
    finally:
        for (module, name), original in originals.items():
            setattr(module, name, original)


def timed_round(config_path: Path, workdir: Path) -> dict[str, float]:
    """One `lifelong-round` flow on a started cluster, timed whole and by phase; Ray's start
    and the warm-up timed apart. Warm either way, as every round after the first is: on Ray
    its workers have built their worlds, serially this process has (with ``--reuse-bootstrap``
    it would otherwise build them inside the round, ~45 s, which the Ray round never pays)."""
    import ray
    from prefect import flow

    from apo_core.config import load_config
    from flows.lifelong import lifelong_round
    from tasks.fanout import ray_cluster
    from tasks.round_tasks import round_warm_up

    seconds: dict[str, float] = dict.fromkeys({**PHASES, **DATASET}, 0.0)

    @flow(name="fanout-round")
    def run() -> None:
        start = time.perf_counter()
        config = load_config(config_path, {"paths": {"workdir": str(workdir)}})
        warm_up = round_warm_up(config)
        with ray_cluster(config, warm_up) as warming:
            seconds["ray start"] = time.perf_counter() - start
            if warming:  # (ray.get would start a Ray of its own when there is none)
                ray.get(warming)
            elif config.cluster.engine == "local":  # this process plays the round: its worlds, as the workers'
                warm_up.prepare()
            seconds["warm-up"] = time.perf_counter() - start - seconds["ray start"]
            start = time.perf_counter()
            with phases_timed(seconds):
                lifelong_round(str(config_path), str(workdir))
            seconds["round"] = time.perf_counter() - start

    run()
    seconds["rest"] = seconds["round"] - sum(seconds[phase] for phase in PHASES)
    return seconds


def paired_rounds(work: Path, serial_config: Path, ray_config: Path, pairs: int) -> tuple[dict, dict, list[float]]:
    """The round ``pairs`` times serially and on Ray, each from its own copy of the
    bootstrap. This machine's speed drifts (one round serially: 148-209 s between runs), so
    each Ray round is set beside the serial round next to it, and every other pair runs Ray
    first so that neither side always comes second. Returns each timing's mean over the
    pairs, and every pair's ratio."""
    runs: dict[str, list[dict]] = {"serial": [], "ray": []}
    configs = {"serial": serial_config, "ray": ray_config}
    for pair in range(pairs):
        for copy in ("serial", "ray"):
            shutil.rmtree(work / copy, ignore_errors=True)
            shutil.copytree(work / "base", work / copy)
        for copy in ("serial", "ray") if pair % 2 == 0 else ("ray", "serial"):
            runs[copy].append(timed_round(configs[copy], work / copy))
    serial_runs, ray_runs = runs["serial"], runs["ray"]

    def mean(runs: list[dict]) -> dict:
        return {key: sum(run[key] for run in runs) / len(runs) for key in runs[0]}

    return mean(serial_runs), mean(ray_runs), [r["round"] / s["round"] for s, r in zip(serial_runs, ray_runs)]


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    """The mean of ``values`` and its 95% Student-t interval (the pairs' ratios)."""
    from scipy import stats

    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, mean, mean
    low, high = stats.t.interval(0.95, len(values) - 1, loc=mean, scale=stats.sem(values))
    return mean, float(low), float(high)


def per_task_cost(config_path: Path) -> float:
    """Seconds Prefect + Ray add to one task (a no-op), on a started local Ray (2 CPUs)."""
    from prefect import flow, task

    from apo_core.config import load_config
    from tasks.fanout import FanOut, ray_cluster
    from tasks.round_tasks import round_warm_up

    @task(name="no-op")
    def no_op(i: int) -> int:
        return i

    config = load_config(config_path)

    @flow(name="ray-task-cost")
    def measure() -> float:
        with ray_cluster(config, round_warm_up(config)), FanOut(config) as fan_out:
            fan_out.map(no_op, [dict(i=i) for i in range(4)])  # after the workers' warm-ups
            start = time.perf_counter()
            fan_out.map(no_op, [dict(i=i) for i in range(40)])
            return (time.perf_counter() - start) / 40 * 2  # 2 workers run them side by side
    return measure()


def rate_chunks(config_path: Path, episodes: int):
    """The config and the chunks of the rate test: ``episodes`` seeds of the first task."""
    from apo_core.config import load_config, with_overrides
    from apo_core.evaluate import evaluation_chunks

    config = with_overrides(load_config(config_path), {"evaluation": {"episodes": episodes}})
    return config, evaluation_chunks(config, tasks=config.env.tasks[:1])


def evaluation_rate(config_path: Path, model_dir: Path, episodes: int) -> float:
    """Episodes per second of one model's evaluation on ``episodes`` validation seeds."""
    from prefect import flow

    from tasks.fanout import FanOut, ray_cluster
    from tasks.round_tasks import evaluate_chunk, round_warm_up

    config, chunks = rate_chunks(config_path, episodes)
    workers = config.cluster.num_cpus if config.cluster.engine == "ray" else 1

    @flow(name="evaluation-rate")
    def run() -> float:
        with ray_cluster(config, round_warm_up(config)), FanOut(config) as fan_out:
            # Warm every worker (imports, envs, policy copy: ~20 s each), not just one.
            fan_out.map(evaluate_chunk, [dict(config=config, model_dir=model_dir, chunk=c) for c in chunks[:workers]])
            start = time.perf_counter()
            fan_out.map(evaluate_chunk, [dict(config=config, model_dir=model_dir, chunk=c) for c in chunks])
            return episodes / (time.perf_counter() - start)
    return run()


def _plain_evaluator(config_path: Path, model_dir: Path, episodes: int, indices: list[int], ready,
                     durations) -> None:
    """One plain process (no Ray, no Prefect, one torch thread): warms up on its first chunk
    (worlds, policy copy), as each Ray worker does in :func:`evaluation_rate`, waits for the
    others, then evaluates its chunks. Puts its seconds, or its error, on ``durations``."""
    try:
        import torch

        from apo_core.loop import learner

        torch.set_num_threads(1)
        config, chunks = rate_chunks(config_path, episodes)
        learner.evaluate_model_on_chunk(config, model_dir, chunks[indices[0]])
        ready.wait(timeout=PLAIN_TIMEOUT_SECONDS)
        began = time.perf_counter()
        for i in indices:
            learner.evaluate_model_on_chunk(config, model_dir, chunks[i])
        durations.put(time.perf_counter() - began)
    except BaseException as error:
        ready.abort()  # the others (and the parent) stop waiting for this one
        durations.put(f"{type(error).__name__}: {error}")


def plain_processes_rate(config_path: Path, model_dir: Path, episodes: int, processes: int) -> float:
    """Episodes per second of ``processes`` plain processes evaluating at once, the chunks
    dealt out in turn: what the machine itself gives that many processes, Ray aside."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # one EGL context per process, as on Ray
    _, chunks = rate_chunks(config_path, episodes)
    processes = min(processes, len(chunks))
    ready, durations = context.Barrier(processes + 1), context.Queue()
    workers = [context.Process(target=_plain_evaluator,
                               args=(config_path, model_dir, episodes, list(range(k, len(chunks), processes)),
                                     ready, durations))
               for k in range(processes)]
    for worker in workers:
        worker.start()
    try:
        ready.wait(timeout=PLAIN_TIMEOUT_SECONDS)
    except threading.BrokenBarrierError:
        pass  # a worker failed: its error is on the queue
    results = [durations.get(timeout=PLAIN_TIMEOUT_SECONDS) for _ in workers]
    for worker in workers:
        worker.join()
    errors = [result for result in results if isinstance(result, str)]
    if errors:
        raise RuntimeError(f"a plain evaluation process failed: {errors[0]}")
    return episodes / max(results)


def evaluation_rates(args, work: Path) -> dict[str, float]:
    """Episodes per second of the Ray round's model: in this process, on 1 and on 2 Ray
    workers, and in 1 plain process and 2 at once (what two processes get here without Ray)."""
    from apo_core.config import load_config
    from apo_core.workdir import model_dir

    local_config, ray_config = config_file(work, args, "local"), config_file(work, args, "ray")
    model = model_dir(load_config(ray_config, {"paths": {"workdir": str(work / "ray")}}), 1)
    return {"this process": evaluation_rate(local_config, model, args.eval_episodes),
            "Ray, 1 worker": evaluation_rate(config_file(work, args, "ray", 1), model, args.eval_episodes),
            "Ray, 2 workers": evaluation_rate(ray_config, model, args.eval_episodes),
            "1 plain process, no Ray": plain_processes_rate(local_config, model, args.eval_episodes, 1),
            "2 plain processes at once, no Ray": plain_processes_rate(local_config, model, args.eval_episodes, 2)}


def rate_rows(rates: dict[str, float]) -> list[list]:
    """[where, episodes/s, speed-up over this process]; then the two cores' own scaling."""
    plain = rates["2 plain processes at once, no Ray"] / rates["1 plain process, no Ray"]
    return [*([where, round(rate, 2), f"x{rate / rates['this process']:.2f}"] for where, rate in rates.items()),
            ["2 plain processes over 1: what two cores give here", "-", f"x{plain:.2f}"]]


def report_rates(args, work: Path) -> None:
    rates = evaluation_rates(args, work)
    report("fanout-rates", ["where", "episodes/s", "speed-up"], rate_rows(rates),
           {"evaluation_episodes_per_second": rates, "eval_episodes": args.eval_episodes})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="a config layered over the defaults (default: none)")
    parser.add_argument("--robots", type=int, default=2)
    parser.add_argument("--eval-episodes", type=int, default=200)
    parser.add_argument("--reuse-bootstrap", action="store_true",
                        help="start from the bootstrap of an earlier run (same config) instead of a new one")
    parser.add_argument("--pairs", type=int, default=1,
                        help="time the round this many times serially and on Ray, in turn (timings: their means)")
    parser.add_argument("--no-rates", action="store_true", help="the two rounds only, not the evaluation rates")
    parser.add_argument("--rates-only", action="store_true",
                        help="only the evaluation rates, on the round-1 model of an earlier run (fanout-rates.json)")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error(f"--pairs: expected at least 1, got {args.pairs}")
    return args


def round_rows(serial: dict, on_ray: dict, pair_ratios: list[float], tasks_per_round: int,
               per_task: float) -> tuple[list[list], dict]:
    """The table's rows for the two rounds, and the figures the JSON keeps beside them."""
    ratio_interval = mean_interval(pair_ratios)
    ray_start, round_s = on_ray["ray start"], on_ray["round"]
    cold_round = round_s + ray_start + on_ray["warm-up"]
    cold_serial = serial["round"] + serial["warm-up"]  # (this process building its worlds)
    task_cost = tasks_per_round * per_task
    demo_rounds = 3  # apo demo's rounds on its one cluster (its bootstrap, also on it, not counted)
    rows = [["round, serial (engine: local, warm)", round(serial["round"], 1), "-"],
            ["round, Ray with 2 workers (started, warm)", round(round_s, 1),
             f"ratio {round_s / serial['round']:.2f} (goal <= 0.6)"],
            *([[f"ratio of each pair ({len(pair_ratios)}, in turn)", "-",
                 ", ".join(f"{ratio:.2f}" for ratio in pair_ratios)],
               ["ratio per pair: mean [95% interval]", "-", "{:.2f} [{:.2f}, {:.2f}]".format(*ratio_interval)]]
              if len(pair_ratios) > 1 else []),
            ["Ray start + worker warm-up, once per cluster", round(on_ray["ray start"] + on_ray["warm-up"], 1),
             f"if both rounds paid their warm-ups: ratio {cold_round / cold_serial:.2f}"],
            ["serial warm-up (this process builds its worlds), once", round(serial["warm-up"], 1),
             "0 when the bootstrap ran in this process"],
            ["Ray start (local, 2 CPUs)", round(ray_start, 1),
             f"{ray_start / round_s:.1%} of one round; {ray_start / (demo_rounds * round_s):.1%} over apo demo's "
             f"{demo_rounds} rounds"],
            [f"per Prefect task on Ray x {tasks_per_round} tasks", round(task_cost, 1), f"{per_task:.2f} s each"],
            ["Ray start + task overhead", round(ray_start + task_cost, 1),
             f"{(ray_start + task_cost) / round_s:.1%} of one round; "
             f"{(ray_start + demo_rounds * task_cost) / (demo_rounds * round_s):.1%} over apo demo's rounds "
             "(goal <= 5%)"]]
    rows += [[f"  {phase}: serial / Ray", f"{serial[phase]:.1f} / {on_ray[phase]:.1f}",
              f"x{serial[phase] / max(on_ray[phase], 1e-9):.2f}"] for phase in (*PHASES, *DATASET, "rest")]
    # What each kind of work would allow alone: the learner gone from both rounds, or the
    # split phases at exactly x2 (two cores' limit) with the learner as it ran.
    learner, split = "dataset + update", ("collect", "evaluate")
    free_learner = (round_s - on_ray[learner]) / (serial["round"] - serial[learner])
    perfect_split = (round_s - sum(on_ray[phase] - serial[phase] / 2 for phase in split)) / serial["round"]
    rows += [["bound: dataset + update free in both rounds", "-", f"ratio {free_learner:.2f}"],
             ["bound: collect and evaluate split exactly x2", "-", f"ratio {perfect_split:.2f}"]]
    figures = {"serial": serial, "ray": on_ray, "ratio": round_s / serial["round"],
               "pair_ratios": pair_ratios, "pair_ratio_mean_ci95": ratio_interval,
               "ratio_free_learner": free_learner, "ratio_perfect_split": perfect_split,
               "ratio_paying_start_and_warm_up": cold_round / cold_serial, "ray_start_seconds": ray_start,
               "per_task_seconds": per_task, "overhead_share_one_round": (ray_start + task_cost) / round_s}
    return rows, figures


def tasks_in_a_round(config_path: Path) -> int:
    """Prefect tasks a round submits to Ray: one collection per robot, one per evaluation chunk."""
    from apo_core.config import load_config
    from apo_core.evaluate import evaluation_chunks
    from apo_core.loop.learner import round_suites

    config = load_config(config_path)
    chunks = evaluation_chunks(config, tasks=config.env.tasks[:1], suites=round_suites(config))
    return len(config.collect.robots) + len(chunks)


def main() -> None:
    args = parse_args()
    from flows.lifelong import bootstrap

    work = RESULTS / "fanout-work"
    if args.rates_only:
        report_rates(args, work)
        return
    started = time.perf_counter()
    if not (args.reuse_bootstrap and (work / "base" / "bootstrapped").exists()):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        bootstrap(str(config_file(work, args, "local")), str(work / "base"))
        (work / "base" / "bootstrapped").touch()
    serial_config, ray_config = config_file(work, args, "local"), config_file(work, args, "ray")
    serial, on_ray, pair_ratios = paired_rounds(work, serial_config, ray_config, args.pairs)
    rows, figures = round_rows(serial, on_ray, pair_ratios, tasks_in_a_round(ray_config), per_task_cost(ray_config))
    rates = {} if args.no_rates else evaluation_rates(args, work)
    rows += [[f"evaluation, {where}", f"{rate} episodes/s" if rate != "-" else rate, speed_up]
             for where, rate, speed_up in (rate_rows(rates) if rates else [])]
    report("fanout", ["what", "seconds", "note"], rows,
           {**figures, "evaluation_episodes_per_second": rates, "robots": args.robots,
            "eval_episodes": args.eval_episodes, "config": args.config,
            "wall_seconds": time.perf_counter() - started})

if __name__ == "__main__":
    main()
