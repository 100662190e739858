"""Where a round's parallel work runs: Ray through Prefect's RayTaskRunner, or this process.

``cluster.engine: ray`` submits the fan-out steps (each robot's collection, the update,
each evaluation chunk) to a :class:`prefect_ray.RayTaskRunner`; ``engine: local`` runs them
here, one after another. Either way each step is the same Prefect task on the same inputs, so
the outcomes are the same (tests/test_fleet.py).

Ray pitfalls handled here (docs/deployment.md §7, prefect#18485, mujoco#991):
* workers do not inherit the driver's Prefect API (an ephemeral server's URL is not even
  in its environment) nor ``MUJOCO_GL``: both go to every worker in ``runtime_env``;
* worker processes are started fresh, never forked, and each owns its envs (one EGL
  context per process) and its copy of the policy, built on first use;
* workers' own output is not forwarded (``log_to_driver=False``): progress is the
  driver's, from the episodes arriving in the store and the chunks coming back.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from apo_core.config import ApoConfig
from apo_core.errors import ApoError

# Passed to every Ray worker when set here (never credentials: those stay with the driver,
# which does every S3, git and DVC step itself).
FORWARDED_ENV = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "PREFECT_LOGGING_LEVEL", "PREFECT_HOME",
                 "HF_DATASETS_DISABLE_PROGRESS_BARS")
POLL_SECONDS = 1.0


def _ray_init_kwargs(config: ApoConfig) -> dict:
    kwargs: dict[str, Any] = dict(log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    if config.cluster.address is None:
        kwargs.update(num_cpus=config.cluster.num_cpus or os.cpu_count(), include_dashboard=False)
    return kwargs


def _worker_environment() -> dict[str, str]:
    """The variables every worker needs: the live Prefect API and the rendering backend."""
    from prefect.client.orchestration import get_client

    variables = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
    variables.setdefault("MUJOCO_GL", "egl")
    with get_client(sync_client=True) as client:  # the ephemeral server's URL, or PREFECT_API_URL
        variables["PREFECT_API_URL"] = str(client.api_url)
    return variables


@dataclass(frozen=True)
class WarmUp:
    """What a worker builds before its first call (the caller's knowledge, e.g. a round's
    worlds), and on how many workers; ``prepare`` is pickled to them."""

    prepare: Callable[[], None]
    workers: int


@contextmanager
def ray_cluster(config: ApoConfig, warm_up: WarmUp | None = None) -> Iterator[list]:
    """Start (or join) the configured Ray cluster for the duration of the block.

    A local Ray (``address: null``) is started with the machine's cores and stopped at the
    end; an address joins a running cluster. An unreachable address is one clear error.
    Yields the references of the workers' warm-ups (:func:`warm_workers`) for a caller that
    wants to wait for them. Does nothing (yields no warm-ups) for ``engine: local`` or when
    Ray is already up in this process.
    """
    if config.cluster.engine != "ray":
        yield []
        return
    import ray

    if ray.is_initialized():
        yield []
        return
    address = config.cluster.address
    # Ray nices its workers by 15: beside any other load on the machine (a second run, a
    # benchmark) the robots and evaluation chunks would then all but stop.
    os.environ.setdefault("RAY_worker_niceness", "0")
    if address not in (None, "auto"):
        _check_reachable(address)  # ray.init would retry an unreachable address for minutes
    try:
        ray.init(address, runtime_env={"env_vars": _worker_environment()}, **_ray_init_kwargs(config))
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ApoError(f"cluster.address: cannot start or reach {address or 'a local Ray'}: "
                       f"{str(error).splitlines()[0]} (is `ray start --head` running there? docs/deployment.md §4)") from None
    try:
        yield [] if warm_up is None else warm_workers(warm_up)
    finally:
        ray.shutdown()


def warm_workers(warm_up: WarmUp) -> list:
    """Have as many workers as will run at once (at most one per CPU) run ``warm_up`` now;
    returns the warm-ups' references (nothing needs to wait for them).

    Workers are new processes for every driver, even on a long-running cluster: each one
    imports torch, the policy code and Prefect's task engine and builds its envs (tens
    of seconds) before its first call. Started with the cluster, that happens while the
    driver does its serial steps (demos, dataset, update). A warm-up that fails is dropped: the real step then fails
    (or retries) with the same error, where it is reported.
    """
    import ray

    workers = min(warm_up.workers, int(ray.cluster_resources().get("CPU", 1)))
    prepare = ray.remote(_warm_worker)
    return [prepare.remote(warm_up.prepare) for _ in range(workers)]


def _warm_worker(prepare: Callable[[], None]) -> None:
    """One worker's warm-up: Prefect's task engine, which every task runs in (its import
    would otherwise be paid by the worker's first task), then what the caller asked for."""
    import prefect.task_engine  # noqa: F401

    prepare()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """One clear line when nothing listens at a cluster's ``host:port`` (Ray's GCS)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ApoError(f"cluster.address: expected host:port (e.g. 10.0.0.5:6379) or auto, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ApoError(f"cluster.address: cannot reach a Ray cluster at {address}: {error.strerror or error} "
                       f"(is `ray start --head` running there? docs/deployment.md §4)") from None


class FanOut:
    """Runs calls of Prefect tasks: on Ray in parallel (:meth:`map`) or beside the caller's
    own work (:meth:`start`); or here, one by one.

    A context manager used inside a flow. With Ray it joins the Ray this process already
    runs (``apo run`` starts one for all its rounds, :func:`ray_cluster`) or starts its own
    for the block (a deployment's flow run; its workers run ``warm_up`` first), then enters
    a RayTaskRunner on it.
    """

    def __init__(self, config: ApoConfig, warm_up: WarmUp | None = None):
        self.config = config
        self.warm_up = warm_up
        self._runner = None
        self._stack = ExitStack()

    @property
    def parallel(self) -> bool:
        return self._runner is not None

    def __enter__(self) -> FanOut:
        if self.config.cluster.engine == "ray":
            from prefect_ray import RayTaskRunner

            self._stack.enter_context(ray_cluster(self.config, self.warm_up))
            runner = RayTaskRunner(address=self.config.cluster.address, init_kwargs=_ray_init_kwargs(self.config))
            self._runner = self._stack.enter_context(runner)
        return self

    def __exit__(self, *exc_info) -> None:
        self._runner = None
        self._stack.__exit__(*exc_info)

    def training_gpus(self) -> int:
        """GPUs an update asks the cluster for: 1 when train.device is cuda, or auto on a
        cluster that has GPUs; 0 (a CPU worker, or the flow's own process) otherwise."""
        device = self.config.train.device
        if self._runner is None or device == "cpu":
            return 0
        import ray

        return 1 if device == "cuda" or ray.cluster_resources().get("GPU", 0) >= 1 else 0

    def map(self, task, calls: list[dict], *, on_result: Callable[[int, Any], None] | None = None,
            on_tick: Callable[[], None] | None = None, **remote_options) -> list:
        """``task(**call)`` for every call; results in call order.

        ``on_result(i, result)`` as each call finishes; ``on_tick()`` about every second
        while parallel calls run (progress read from the data they write).
        ``remote_options`` (e.g. ``num_gpus=1``) are Ray's resource requests per call.
        """
        if self._runner is None:
            results = []
            for i, call in enumerate(calls):
                results.append(task(**call))
                if on_result is not None:
                    on_result(i, results[-1])
            return results
        import ray

        # At most one call per CPU of the cluster in flight, the next submitted as one
        # finishes: Ray does not start queued tasks in the order they were submitted, and a
        # long chunk started last leaves the other workers idle at the end. Calls are thus
        # started in the caller's order (the longest chunks first).
        slots = max(1, int(ray.cluster_resources().get("CPU", 1)))
        waiting = deque(enumerate(calls))
        running: dict = {}  # Ray object ref -> (call index, Prefect future)
        results: list = [None] * len(calls)
        while waiting or running:
            while waiting and len(running) < slots:
                i, call = waiting.popleft()
                future = self._submit(task, call, remote_options)
                running[future.wrapped_future] = (i, future)
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
            for i, future in sorted(running.pop(ref) for ref in done):
                results[i] = future.result()  # the task's own error, once its retries are spent
                if on_result is not None:
                    on_result(i, results[i])
            if on_tick is not None and running:
                on_tick()
        return results

    def start(self, task, call: dict, **remote_options) -> Started:
        """``task(**call)`` started on the cluster, running while the caller goes on; here
        (``engine: local``) it runs when its result is asked for."""
        if self._runner is None:
            return Started(run_here=lambda: task(**call))
        return Started(future=self._submit(task, call, remote_options))

    def _submit(self, task, call: dict, remote_options: dict):
        from prefect_ray.context import remote_options as ray_options

        with ray_options(**remote_options):
            return self._runner.submit(task, call)


class Started:
    """One call started by :meth:`FanOut.start`."""

    def __init__(self, *, future=None, run_here: Callable[[], Any] | None = None):
        self._future, self._run_here = future, run_here

    def result(self, on_tick: Callable[[], None] | None = None) -> Any:
        """Wait for the call's result (its own error, once its retries are spent);
        ``on_tick()`` about every second meanwhile."""
        if self._future is None:
            return self._run_here()
        from prefect.futures import wait

        while not wait([self._future], timeout=POLL_SECONDS).done:
            if on_tick is not None:
                on_tick()
        return self._future.result()
