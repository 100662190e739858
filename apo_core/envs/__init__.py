"""Simulated worlds behind one interface (:class:`RobotEnv`).

    base.py           the interface: observation, step outcome, what a world offers
    metaworld_env.py  MetaWorld tasks, rendered offscreen at the policy's camera
    perturbations.py  the evaluation suites: object shift, table colour, lighting, camera
    pool.py           one set of worlds per process, built once

MuJoCo renders offscreen on the CPU through EGL (Debian Mesa); the variable must be set
before mujoco is first imported, so it is set here, at the package's door.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
# Mesa's software rasteriser gives each context one thread per core: a 64 px frame gains
# nothing from them, and two rendering processes contend for them (docs/world.md §2).
os.environ.setdefault("LP_NUM_THREADS", "0")

from apo_core.envs.base import Observation, RobotEnv, StepOutcome  # noqa: E402
from apo_core.envs.metaworld_env import MetaWorldEnv, known_tasks, make_env  # noqa: E402
from apo_core.envs.pool import process_env, process_envs  # noqa: E402

__all__ = ["MetaWorldEnv", "Observation", "RobotEnv", "StepOutcome", "known_tasks", "make_env", "process_env",
           "process_envs"]
