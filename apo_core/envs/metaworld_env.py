"""MetaWorld (MuJoCo) tasks behind :class:`RobotEnv`.

Two MetaWorld traps are handled here (docs/world.md §2):
* as shipped it renders at 3-4 fps (4096 shadow map, 4x MSAA): both are switched off
  before the first render, which gives ~50-80 fps at 64 px;
* built through a benchmark the goal in the observation is zeroed and resets are frozen:
  the env class is built directly, fully observable, with seeded per-episode layouts.
"""

from __future__ import annotations

import atexit
import warnings
import weakref
from functools import cache

import numpy as np

from apo_core.config import EnvConfig, PerturbationConfig
from apo_core.envs.base import Observation, StepOutcome
from apo_core.envs.perturbations import PlainWorld, apply_perturbation
from apo_core.errors import ConfigError

# A short instruction per task: the VLA's language input. Tasks not listed get one made
# from their name.
INSTRUCTIONS = {
    "push": "push the puck to the goal",
    "pick-place": "pick up the puck and place it at the goal",
    "assembly": "put the ring on the peg",
    "peg-insert-side": "insert the peg into the hole",
    "button-press-topdown": "press the button from the top",
    "drawer-open": "open the drawer",
    "door-open": "open the door",
    "reach": "reach the goal",
}

# Envs still open at interpreter exit are closed while EGL is alive (otherwise its
# teardown prints spurious errors from the renderer's __del__). atexit runs last-in
# first-out, so the hook is registered after mujoco's own EGL hook: after the first render.
_OPEN_ENVS: weakref.WeakSet = weakref.WeakSet()


@cache
def _close_open_envs_at_exit() -> None:
    atexit.register(lambda: [env.close() for env in list(_OPEN_ENVS)])

_NO_IMAGE = np.zeros((0, 0, 3), dtype=np.uint8)
_PROPRIO = slice(0, 4)  # hand xyz + gripper opening
_OBJECTS_AND_GOAL = np.r_[4:18, 36:39]  # object poses (current frame) + goal


@cache
def _registry() -> tuple[dict, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        from metaworld.policies import ENV_POLICY_MAP
    return ALL_V3_ENVIRONMENTS, ENV_POLICY_MAP


def known_tasks() -> list[str]:
    envs, policies = _registry()
    return sorted(name.removesuffix("-v3") for name in envs if name in policies)



def _check_task(task: str) -> str:
    envs, policies = _registry()
    env_name = f"{task}-v3"
    if env_name not in envs or env_name not in policies:
        raise ConfigError(
            f"unknown task {task!r}: expected a MetaWorld v3 task with a scripted expert, "
            f"one of {', '.join(known_tasks())}"
        )
    return env_name


class MetaWorldEnv:
    """One MetaWorld task: 64 px RGB from a fixed camera, proprio, object state, 4-D action.

    Action: (dx, dy, dz, grip) in [-1, 1]; ``gripper_dim = 3``. One instance per task and
    process: under EGL a second env made after ``close()`` renders black frames.
    """

    action_dim = 4
    gripper_dim = 3

    def __init__(self, task: str, config: EnvConfig, perturbation: PerturbationConfig | None = None,
                 render: bool = True):
        env_name = _check_task(task)
        envs, _ = _registry()
        self.task = task
        self.instruction = INSTRUCTIONS.get(task, task.replace("-", " "))
        self.max_steps = config.max_steps
        self.perturbation: PerturbationConfig | None = None
        self.render = render
        size = config.image_size
        env = envs[env_name](render_mode="rgb_array", camera_name=None, width=size, height=size)
        cameras = [env.model.camera(i).name for i in range(env.model.ncam)]  # env.camera names one of them
        # Fresh object/goal layout per seeded episode with the goal visible in the observation.
        env._partially_observable = False
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env._set_task_called = True
        if "sawyer_observation_space" in env.__dict__:
            del env.sawyer_observation_space  # cached with the goal zeroed
        env.max_path_length = max(env.max_path_length, config.max_steps)

        model = env.model
        model.vis.quality.shadowsize = 0
        model.vis.quality.offsamples = 0
        camera_id = cameras.index(config.camera)
        if config.camera_fovy is not None:
            model.cam_fovy[camera_id] = config.camera_fovy
        renderer = env.mujoco_renderer
        renderer.camera_id = camera_id
        renderer.camera_name = None
        self._env, self._camera_id, self._plain = env, camera_id, PlainWorld.of(env)
        self.perturb(perturbation)
        self._closed = False
        _OPEN_ENVS.add(self)

    def perturb(self, perturbation: PerturbationConfig | None) -> None:
        """Play the next episodes in ``perturbation``'s world (None: the plain one), changed in
        place: one world serves every suite (docs/world.md §4)."""
        if perturbation != self.perturbation:
            self._plain.restore(self._env)
            if perturbation is not None:
                apply_perturbation(self._env, self._camera_id, perturbation)
            self.perturbation = perturbation

    def render_image(self) -> np.ndarray:
        """The camera's view of the current state: [S, S, 3] uint8, rows top to bottom."""
        # Each world renders in its own GL context, which gymnasium makes current only when
        # it creates it: with several worlds in a process, the last one created would draw
        # every other world's frame with its own textures and meshes (docs/world.md §3).
        renderer = self._env.mujoco_renderer
        renderer._get_viewer(self._env.render_mode).make_context_current()
        frame = renderer.render(self._env.render_mode)
        _close_open_envs_at_exit()
        return np.ascontiguousarray(frame[::-1])  # fixed cameras render bottom-up

    def _observe(self, native: np.ndarray) -> Observation:
        # Without rendering (nobody looks at every step's image) steps are ~20x cheaper; a
        # policy then asks for the image only when it decides (render_image).
        image = self.render_image() if self.render else _NO_IMAGE
        native = np.asarray(native, dtype=np.float64)
        return Observation(
            image=image,
            state=native[_PROPRIO].astype(np.float32),
            environment_state=native[_OBJECTS_AND_GOAL].astype(np.float32),
            native=native,
        )

    def reset(self, seed: int) -> Observation:
        self._env.seed(int(seed))
        native, _ = self._env.reset()
        self._steps = 0
        return self._observe(native)

    def step(self, action: np.ndarray) -> StepOutcome:
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (self.action_dim,):
            raise ValueError(f"{self.task}: action must have shape ({self.action_dim},), got {action.shape}")
        native, reward, _, _, info = self._env.step(np.clip(action, -1.0, 1.0))
        self._steps += 1
        return StepOutcome(
            observation=self._observe(native),
            reward=float(reward),
            success=bool(info.get("success", False)),
            truncated=self._steps >= self.max_steps,
            info={key: float(value) for key, value in info.items()},
        )

    def step_physics(self, action: np.ndarray) -> None:
        """Advance MetaWorld's simulation one step with ``action``, and nothing else: no
        observation, image, step count, success or action check. For timing the simulator
        alone (benchmarks/env_speed.py); an episode is played with :meth:`reset` and
        :meth:`step`. When MetaWorld's own episode runs out (``max_path_length``) it starts
        the next one, unseeded, so that stepping can go on for as long as one times it."""
        self._env.step(action)
        if self._env.curr_path_length >= self._env.max_path_length - 1:
            self._env.reset()

    def object_height(self) -> float:
        return float(self._env._get_pos_objects()[2])

    def scripted_expert(self):
        """The task's MetaWorld scripted policy (stateless, acts from the native obs)."""
        _, policies = _registry()
        return policies[f"{self.task}-v3"]()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._env.close()


def make_env(task: str, config: EnvConfig, perturbation: PerturbationConfig | None = None, *,
             render: bool = True) -> MetaWorldEnv:
    """Build the world named by ``config.world`` for one task (``render=False``: no images)."""
    if config.world != "metaworld":  # the config's Literal already refuses others
        raise ConfigError(f"env.world: unsupported world {config.world!r}")
    return MetaWorldEnv(task, config, perturbation, render=render)
