"""Worlds kept for the life of a process: built once, reused by every episode it plays.

A MuJoCo model takes about a second to compile, and under EGL a second env made after
``close()`` renders black frames (docs/world.md §3), so a worker process (a Ray worker,
or the flow's own process) owns its envs: the first episode that needs a world builds it,
later episodes, chunks and rounds reuse it. Each key (task, env config, rendering) has its
own envs; a perturbation suite is applied to them in place (``MetaWorldEnv.perturb``), so a
worker holds one set of worlds per task, not one per task and suite.
"""

from __future__ import annotations

from apo_core.config import EnvConfig, PerturbationConfig
from apo_core.envs.metaworld_env import MetaWorldEnv, make_env

_POOLS: dict[tuple, list[MetaWorldEnv]] = {}


def process_envs(task: str, config: EnvConfig, perturbation: PerturbationConfig | None = None, *,
                 render: bool = True, count: int = 1) -> list[MetaWorldEnv]:
    """``count`` copies of one world, owned by this process (built on first use), set to
    ``perturbation``'s suite (None: unperturbed) until the next call asks for another."""
    pool = _POOLS.setdefault((task, config.model_dump_json(), render), [])
    while len(pool) < count:
        pool.append(make_env(task, config, render=render))
    for env in pool[:count]:
        env.perturb(perturbation)
    return pool[:count]


def process_env(task: str, config: EnvConfig, perturbation: PerturbationConfig | None = None, *,
                render: bool = True) -> MetaWorldEnv:
    """This process's env for one world (see :func:`process_envs`)."""
    return process_envs(task, config, perturbation, render=render, count=1)[0]
