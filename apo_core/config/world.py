"""The world and the data it yields: the simulator, the simulated human, labels,
collection by the fleet, and seeded evaluation."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from apo_core.config.base import Section
from apo_core.errors import ConfigError

ROBOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
COLLECTION_SEEDS_PER_ROUND = 100_000  # round N collects on seeds collect.seed + 100_000 · N + ...
COLLECTION_SEED_LIMIT = 100_000_000  # validation and test seeds start at or above this
COLLECTION_ROUNDS = 1000  # rounds a collection seed range covers: collect.seed + 100_000 · [0, 1000)
ADHOC_SEEDS_PER_ROBOT = 1_000  # seeds of one robot's collection outside the rounds (apo collect)
AdhocActor = Literal["expert", "random", "policy"]
# Where each kind of collection outside the rounds starts within round 0's seeds: the
# demonstrations from the first (as the loop's own), the others well after them.
ADHOC_SEED_BLOCKS: dict[str, int] = {"expert": 0, "random": 50_000, "policy": 75_000}


class EnvConfig(Section):
    """The simulated world (MetaWorld) and how it is observed."""

    world: Literal["metaworld"] = Field("metaworld", description="the simulator")
    tasks: list[str] = Field(
        default_factory=lambda: ["button-press-topdown", "drawer-open", "door-open", "window-open", "push",
                                 "pick-place"],
        description="MetaWorld tasks (the scripted experts solve >= 85% of each): the loop runs on the first "
                    "`loop_tasks`; the first four are those the camera policy clones to >= 40% from 5 "
                    "demonstrations (benchmarks/lifelong.py runs them), then two whose small puck it does not "
                    "yet find in 64 px (benchmarks/README.md)")
    image_size: int = Field(64, ge=16, le=512, description="side of the square RGB image, pixels")
    camera: Literal["corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV"] = Field(
        "corner2", description="a MetaWorld camera (behindGripper and gripperPOV move with the hand)")
    camera_fovy: float | None = Field(45.0, gt=5, lt=120, description="vertical field of view, degrees, narrowed "
                                      "so small objects are visible at 64 px (null: the camera's own)")
    max_steps: int = Field(200, ge=1, le=500, description="episode cap, steps (MetaWorld allows 500)")
    fps: int = Field(20, ge=1, description="frame rate recorded in the dataset's timestamps")

    @model_validator(mode="after")
    def _tasks_not_empty(self) -> EnvConfig:
        if not self.tasks:
            raise ValueError("env.tasks must list at least one task")
        return self


class TakeoverConfig(Section):
    """The simulated human (apo_core/human/takeover.py): it watches every policy action
    beside the scripted expert's and takes over when the robot heads for failure, then
    acts (the expert's actions) for `correction_steps` steps and hands control back."""

    enabled: bool = Field(True, description="false: nobody takes over")
    divergence_threshold: float = Field(0.9, gt=0, description="take over when ||a_policy - a_expert||_2 (both "
                                        "clipped to [-1, 1]) stays above this ...")
    divergence_steps: int = Field(5, ge=1, description="... for this many consecutive steps")
    no_progress_steps: int = Field(40, ge=1, description="or when the reward has not beaten its best by "
                                   "`progress_epsilon` for this many policy steps")
    progress_epsilon: float = Field(0.05, ge=0, description="the reward gain that counts as progress")
    min_object_height: float = Field(-0.05, description="or when the object falls below this height (off the table)")
    correction_steps: int = Field(20, ge=1, description="steps the human acts before handing back")


class LabelConfig(Section):
    """Per-step APO labels (docs/apo.md §2)."""

    k: int = Field(10, ge=0, description="failure-prone steps before each takeover (the paper's K)")
    label_unrescued_failure: bool = Field(
        False, description="an episode that fails under policy control gets its last K steps failure-prone")
    drop_out_of_range: bool = Field(False, description="drop steps whose normalised action leaves [-1, 1] "
                                    "(the authors' code)")
    drop_noop: bool = Field(False, description="drop steps whose motion is below `noop_threshold` "
                            "(the authors' code)")
    noop_threshold: float = Field(0.05, ge=0, description="sum of |motion dims| under which a step is a no-op")


class WorldVariationConfig(Section):
    """The world the robots meet varies: a share of each robot's episodes is played in a
    seeded variation of it (one kind, a magnitude drawn up to its bound, a direction or
    colour drawn at random), never the settings of an evaluation suite. The variation is
    drawn from the episode's seed, recorded with the episode, in the dataset and its lineage
    (apo_core/envs/perturbations.py: world_variation)."""

    share: float = Field(0.0, ge=0, le=1, description="the share of interaction episodes played in a variation "
                         "(0: every episode in the plain world)")
    object_shift: float = Field(0.05, ge=0, le=0.2, description="largest shift of the object's spawn region, metres")
    table_color: float = Field(0.7, ge=0, le=1, description="largest tint of the table and floor, in [0, 1]")
    lighting: float = Field(0.5, ge=0, le=1, description="largest change of the lights' intensity and position")
    camera: float = Field(0.05, ge=0, le=0.2, description="largest camera move, metres (its field of view by up to "
                          "100x this, degrees)")


class CollectConfig(Section):
    """Interaction collection by a fleet of robots, each with a person (or the simulated
    human) watching. Each robot collects its share of a round's interactions on its own
    seeds, into its own episode directory."""

    interactions_per_round: int = Field(20, ge=1, le=COLLECTION_SEEDS_PER_ROUND, description="episodes per round "
                                        "and loop task, whole fleet (the paper updates every 20)")
    expert_demos_per_task: int = Field(5, ge=0, le=10_000, description="scripted demonstrations per loop task for "
                                       "round 0 (5 each: the camera policy clones to ~30% on the two loop tasks, "
                                       "room to learn)")
    seed: int = Field(0, ge=0, description="first collection seed; robot r of n plays round N on "
                      "seed + 100000·N + r·100000/n + i")
    robots: list[str] = Field(default_factory=lambda: ["sim-robot-0", "sim-robot-1"], min_length=1,
                              description="the robots' names, or their number (2 = sim-robot-0, sim-robot-1)")
    world_variation: WorldVariationConfig = Field(default_factory=WorldVariationConfig,
                                                  description="the share of interactions in a varied world")

    @field_validator("robots", mode="before")
    @classmethod
    def _robot_count(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError(f"collect.robots: a robot count must be >= 1, got {value}")
            return [f"sim-robot-{i}" for i in range(value)]
        return value

    @model_validator(mode="after")
    def _robots_valid(self) -> CollectConfig:
        bad = [name for name in self.robots if not ROBOT_NAME.match(name)]
        if bad:
            raise ValueError(f"collect.robots: names must be letters, digits, '-' or '_' (they name directories "
                             f"and event resources), got {bad}")
        duplicates = sorted({name for name in self.robots if self.robots.count(name) > 1})
        if duplicates:
            raise ValueError(f"collect.robots: each robot must be named once, {duplicates} repeated")
        if self.interactions_per_round > self.seeds_per_robot:
            raise ValueError(f"collect: {self.interactions_per_round} interactions per round do not fit the "
                             f"{self.seeds_per_robot} seeds per robot and round of a {len(self.robots)}-robot fleet")
        return self

    @property
    def seeds_per_robot(self) -> int:
        """Each robot's seed range within a round: the round's 100 000 seeds split evenly."""
        return COLLECTION_SEEDS_PER_ROUND // len(self.robots)

    def robot_index(self, robot: str) -> int:
        if robot not in self.robots:
            raise ConfigError(f"unknown robot {robot!r}: collect.robots lists {self.robots}")
        return self.robots.index(robot)

    def robot_share(self, robot: str) -> int:
        """How many of a round's interactions this robot collects (the fleet splits them evenly)."""
        quotient, remainder = divmod(self.interactions_per_round, len(self.robots))
        return quotient + int(self.robot_index(robot) < remainder)

    @property
    def seed_range(self) -> tuple[int, int]:
        """[first, last) seed any collection of this fleet may play, every round included."""
        return self.seed, self.seed + COLLECTION_SEEDS_PER_ROUND * COLLECTION_ROUNDS

    def round_seed(self, round_number: int, robot: str) -> int:
        """The first seed of ``robot`` in round ``round_number`` (its episode i plays this + i)."""
        if not 0 <= round_number < COLLECTION_ROUNDS:
            raise ConfigError(f"round {round_number}: collection seeds cover rounds 0-{COLLECTION_ROUNDS - 1}")
        return self.seed + COLLECTION_SEEDS_PER_ROUND * round_number + self.seeds_per_robot * self.robot_index(robot)

    def adhoc_seed(self, actor: AdhocActor, robot: str) -> int:
        """The first seed of ``robot``'s collection by ``actor`` outside the loop's rounds
        (`apo collect --policy expert | random | <model folder>`): each actor a block of
        round 0's collection seeds, each robot ``ADHOC_SEEDS_PER_ROBOT`` of it."""
        return self.seed + ADHOC_SEED_BLOCKS[actor] + ADHOC_SEEDS_PER_ROBOT * self.robot_index(robot)


PerturbationKind = Literal["object_shift", "table_color", "lighting", "camera"]


class PerturbationConfig(Section):
    """A named, seeded perturbation suite for evaluation (MetaWorld model parameters set at runtime)."""

    name: str = Field(description="the suite's name in reports (not 'none')")
    kind: PerturbationKind = Field(description="object_shift | table_color | lighting | camera")
    magnitude: float = Field(gt=0, description="metres (object_shift, camera), or a colour / light change in [0, 1]")
    seed: int = Field(0, description="seeds the suite's random draw")


def _default_suites() -> list[PerturbationConfig]:
    return [PerturbationConfig(name="object-shift", kind="object_shift", magnitude=0.05, seed=1),
            PerturbationConfig(name="table-texture", kind="table_color", magnitude=0.7, seed=2),
            PerturbationConfig(name="lighting", kind="lighting", magnitude=0.5, seed=3),
            PerturbationConfig(name="camera-shift", kind="camera", magnitude=0.05, seed=4)]


class EvaluationConfig(Section):
    """Seeded evaluation. Three disjoint seed ranges keep choices honest: collection seeds
    (below 10^8), validation seeds from ``seed`` (the promote gate and any setting chosen)
    and test seeds from ``test_seed`` (reported tables only; docs/apo.md §12)."""

    episodes: int = Field(100, ge=1, le=100_000, description="per task, unperturbed (the gate pools the loop's "
                          "tasks: its paired test sees a ~15-point gain on 2 tasks × 100 seeds)")
    perturbed_episodes: int = Field(20, ge=1, le=100_000, description="per task and perturbation suite (the gate's "
                                    "regression check)")
    seed: int = Field(800_000_000, ge=COLLECTION_SEED_LIMIT, description="first validation seed")
    test_seed: int = Field(900_000_000, ge=COLLECTION_SEED_LIMIT, description="first test seed")
    perturbations: list[PerturbationConfig] = Field(default_factory=_default_suites,
                                                    description="the perturbation suites every round is scored on")
    lockstep_envs: int = Field(16, ge=1, le=256, description="episodes one process plays at once (one batched "
                               "decode per tick)")

    @model_validator(mode="after")
    def _suites_named_once(self) -> EvaluationConfig:
        names = [p.name for p in self.perturbations]
        clashing = sorted({n for n in names if names.count(n) > 1 or n == "none" or not n})
        if clashing:
            raise ValueError(f"evaluation.perturbations: each suite needs its own name (not 'none'), got {clashing}")
        return self

    @model_validator(mode="after")
    def _seed_ranges_disjoint(self) -> EvaluationConfig:
        (first, last), (test_first, test_last) = self.seed_range, self.test_seed_range
        if first < test_last and test_first < last:
            raise ValueError(f"validation seeds [{first}, {last}) and test seeds [{test_first}, {test_last}) overlap")
        return self

    @property
    def seed_range(self) -> tuple[int, int]:
        """[first, last) validation seed (the widest suite)."""
        return self.seed, self.seed + max(self.episodes, self.perturbed_episodes)

    @property
    def test_seed_range(self) -> tuple[int, int]:
        return self.test_seed, self.test_seed + max(self.episodes, self.perturbed_episodes)
