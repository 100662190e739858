"""Named, seeded evaluation perturbations applied to a MetaWorld env at runtime.

Each kind changes MuJoCo model parameters that are known to take visible effect
(docs/world.md §4: rewriting a texture does not, ``mat_rgba``/``light_diffuse``/
``cam_pos`` do). The seed fixes the random direction/colour so that a suite is the same
perturbation on every run and every machine.

* object_shift: the object's spawn region moves by ``magnitude`` metres in the table plane.
* table_color:  the table and floor materials are tinted with a seeded colour; magnitude
  in [0, 1] is how far the tint moves from the original colour.
* lighting:     every light's diffuse intensity is scaled by (1 - magnitude) ... (1 + magnitude)
  and its position moves by up to ``magnitude`` metres.
* camera:       the camera moves by ``magnitude`` metres and its field of view by up to
  ``100 * magnitude`` degrees.

The same kinds vary the world the robots collect in (``collect.world_variation``): a
share of episodes, each in a variation drawn from its seed (:func:`world_variation`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apo_core.config import PerturbationConfig
from apo_core.config.world import WorldVariationConfig

_SURFACE_MATERIALS = ("table_wood", "table_col", "basic_floor")


def _unit_vector(rng: np.random.Generator, dims: int) -> np.ndarray:
    direction = rng.normal(size=dims)
    return direction / np.linalg.norm(direction)


@dataclass(frozen=True)
class PlainWorld:
    """What a perturbation may change in a MetaWorld env, as built, so that one world can
    play every suite in turn: restored before the next perturbation is applied."""

    mat_rgba: np.ndarray
    light_diffuse: np.ndarray
    light_pos: np.ndarray
    cam_pos: np.ndarray
    cam_fovy: np.ndarray
    reset_space: object  # gymnasium Box of the object's spawn region

    @classmethod
    def of(cls, env) -> PlainWorld:
        model = env.model
        return cls(model.mat_rgba.copy(), model.light_diffuse.copy(), model.light_pos.copy(),
                   model.cam_pos.copy(), model.cam_fovy.copy(), env._random_reset_space)

    def restore(self, env) -> None:
        model = env.model
        model.mat_rgba[:], model.light_diffuse[:] = self.mat_rgba, self.light_diffuse
        model.light_pos[:], model.cam_pos[:], model.cam_fovy[:] = self.light_pos, self.cam_pos, self.cam_fovy
        env._random_reset_space = self.reset_space


def apply_perturbation(env, camera_id: int, perturbation: PerturbationConfig) -> None:
    """Change ``env`` (a MetaWorld SawyerXYZEnv) in place as ``perturbation`` describes."""
    rng = np.random.default_rng(perturbation.seed)
    model = env.model
    magnitude = perturbation.magnitude
    if perturbation.kind == "object_shift":
        from gymnasium.spaces import Box

        space = env._random_reset_space
        shift = np.zeros_like(space.low)
        shift[:2] = magnitude * _unit_vector(rng, 2)  # the object's x, y lead the reset vector
        env._random_reset_space = Box(space.low + shift, space.high + shift, dtype=np.float64)
    elif perturbation.kind == "table_color":
        tint = rng.uniform(0.0, 1.0, size=3)
        blend = min(magnitude, 1.0)
        present = {model.material(i).name for i in range(model.nmat)}
        for name in (n for n in _SURFACE_MATERIALS if n in present):
            material = model.material(name)
            material.rgba[:3] = (1 - blend) * material.rgba[:3] + blend * tint
    elif perturbation.kind == "lighting":
        for light in range(model.nlight):
            scale = rng.uniform(1 - magnitude, 1 + magnitude)
            model.light_diffuse[light] = np.clip(model.light_diffuse[light] * scale, 0.0, 1.0)
            model.light_pos[light] += magnitude * _unit_vector(rng, 3)
    elif perturbation.kind == "camera":
        model.cam_pos[camera_id] += magnitude * _unit_vector(rng, 3)
        model.cam_fovy[camera_id] += rng.uniform(-100 * magnitude, 100 * magnitude)
    else:  # pragma: no cover - the config's Literal refuses other kinds
        raise ValueError(f"unknown perturbation kind {perturbation.kind!r}")


VARIED = "varied"  # the name of a drawn variation: varied:<kind>:<magnitude>:<seed>
_VARIATION_STREAM = 7_919  # keeps the variation's draw apart from anything else seeded by the episode's seed


def world_variation(variation: WorldVariationConfig, episode_seed: int,
                    suites: list[PerturbationConfig]) -> PerturbationConfig | None:
    """The world an interaction episode on ``episode_seed`` is played in: None (the plain
    world) for ``1 - share`` of the seeds, otherwise one kind of variation whose bound is
    above 0, its magnitude drawn in [0.2, 1] of the bound and its direction or colour from a
    drawn seed; never one of the evaluation ``suites``. Its name says all of it."""
    rng = np.random.default_rng([_VARIATION_STREAM, episode_seed])
    bounds = {kind: getattr(variation, kind) for kind in ("object_shift", "table_color", "lighting", "camera")}
    kinds = [kind for kind, bound in bounds.items() if bound > 0]
    if rng.random() >= variation.share or not kinds:
        return None
    exact = {(suite.kind, suite.magnitude, suite.seed) for suite in suites}
    while True:
        kind = str(rng.choice(kinds))
        magnitude = round(float(rng.uniform(0.2, 1.0)) * bounds[kind], 4)
        seed = int(rng.integers(1_000, 2**31 - 1))
        if (kind, magnitude, seed) not in exact:
            return PerturbationConfig(name=f"{VARIED}:{kind}:{magnitude}:{seed}", kind=kind, magnitude=magnitude,
                                      seed=seed)
