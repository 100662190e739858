"""The project's typed configuration: one pydantic model per concern, loaded from YAML.

Every command reads the same :class:`ApoConfig`. Unknown keys are refused (a typo must
not silently fall back to a default) and every error names the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from apo_core.errors import ConfigError

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "configs" / "default.yaml"


class _Strict(BaseModel):
    # inf / nan are refused in every float field: `promote_margin: .nan` would promote anything
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EnvConfig(_Strict):
    """The simulated world (MetaWorld) and how it is observed."""

    world: Literal["metaworld"] = "metaworld"
    tasks: list[str] = Field(default_factory=lambda: ["push", "pick-place", "assembly", "peg-insert-side"])
    image_size: int = Field(64, ge=16, le=512, description="square RGB image side, pixels")
    camera: str = "corner2"
    camera_fovy: float | None = Field(45.0, gt=5, lt=120, description="None keeps the camera's own")
    max_steps: int = Field(200, ge=1, le=500, description="episode cap (MetaWorld allows 500)")
    fps: int = Field(20, ge=1, description="recorded timestamp rate (MetaWorld: 5 frames of 0.0025 s ≈ 80 Hz sim)")

    @model_validator(mode="after")
    def _tasks_not_empty(self) -> EnvConfig:
        if not self.tasks:
            raise ValueError("env.tasks must list at least one task")
        return self


class TakeoverConfig(_Strict):
    """When the simulated human takes over, and when it hands control back.

    The human watches every policy action next to what the scripted expert would do:
    * divergence: ||a_policy - a_expert||_2 (both clipped to [-1, 1]) above
      ``divergence_threshold`` for ``divergence_steps`` consecutive steps;
    * no progress: the task reward has not beaten its best by ``progress_epsilon`` for
      ``no_progress_steps`` policy steps;
    * unsafe: the object fell below ``min_object_height`` (off the table).
    It then acts (the expert's action) for ``correction_steps`` steps and hands back.
    """

    enabled: bool = True
    divergence_threshold: float = Field(0.9, gt=0)
    divergence_steps: int = Field(5, ge=1)
    no_progress_steps: int = Field(40, ge=1)
    progress_epsilon: float = Field(0.05, ge=0)
    min_object_height: float = -0.05
    correction_steps: int = Field(20, ge=1)


class LabelConfig(_Strict):
    """APO labels (APO_SPEC.md §2)."""

    k: int = Field(10, ge=0, description="failure-prone steps before each takeover")
    label_unrescued_failure: bool = Field(
        False, description="an episode that fails under policy control: last K steps failure-prone"
    )
    drop_out_of_range: bool = False
    drop_noop: bool = False
    noop_threshold: float = Field(0.05, ge=0)


ROBOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
COLLECTION_SEEDS_PER_ROUND = 100_000  # round N collects on seeds collect.seed + 100_000 · N + ...


class CollectConfig(_Strict):
    """Interaction collection by a fleet of robots (each with a person, or the simulated
    human, watching). ``robots`` names them, or gives their number (sim-robot-0, -1, ...).
    Each robot collects its share of a round's interactions on its own seeds, into its own
    episode directory."""

    interactions_per_round: int = Field(20, ge=1, description="episodes per round, whole fleet (paper: 20)")
    expert_demos_per_task: int = Field(20, ge=0)
    seed: int = Field(0, ge=0)
    robots: list[str] = Field(default_factory=lambda: ["sim-robot-0"], min_length=1)

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

    def round_seed(self, round_number: int, robot: str) -> int:
        """The first seed of ``robot`` in round ``round_number`` (its episode i plays this + i)."""
        return self.seed + COLLECTION_SEEDS_PER_ROUND * round_number + self.seeds_per_robot * self.robot_index(robot)


class ClusterConfig(_Strict):
    """Where the fan-out runs: collection by several robots at once and evaluation in chunks.

    ``engine: ray`` (Prefect's RayTaskRunner) with ``address: null`` starts a local Ray
    with ``num_cpus`` (null: the machine's cores) for the flow; an address
    (``auto``, ``host:6379``) joins an existing cluster. ``engine: local`` runs every step
    in the flow's own process, one after another (for debugging).
    """

    engine: Literal["ray", "local"] = "ray"
    address: str | None = Field(None, description="an existing Ray cluster (null: start a local one)")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of the local Ray (null: all cores)")
    eval_chunk_episodes: int = Field(50, ge=1, description="evaluation seeds per parallel task")
    update_cpus: int = Field(1, ge=1, description="CPUs the update holds on the cluster, and its torch threads "
                             "there (train.threads is for an update in the flow's own process)")


PerturbationKind = Literal["object_shift", "table_color", "lighting", "camera"]


class PerturbationConfig(_Strict):
    """A named, seeded perturbation for evaluation (MetaWorld model parameters at runtime)."""

    name: str
    kind: PerturbationKind
    magnitude: float = Field(gt=0)
    seed: int = 0


COLLECTION_SEED_LIMIT = 100_000_000  # collection seeds: collect.seed + 100_000 · round + i, below this


class EvaluationConfig(_Strict):
    """Seeded evaluation. Three disjoint seed ranges keep choices honest: collection seeds
    (below 10^8), validation seeds from ``seed`` (the promote gate, any setting chosen) and
    test seeds from ``test_seed`` (reported tables only)."""

    episodes: int = Field(20, ge=1, description="per task, unperturbed")
    perturbed_episodes: int = Field(5, ge=1, description="per task and perturbation suite")
    seed: int = Field(800_000_000, ge=COLLECTION_SEED_LIMIT, description="first validation seed")
    test_seed: int = Field(900_000_000, ge=COLLECTION_SEED_LIMIT, description="first test seed")
    perturbations: list[PerturbationConfig] = Field(default_factory=list)
    lockstep_envs: int = Field(16, ge=1, le=256, description="episodes a policy plays at once (one batched decode)")

    @model_validator(mode="after")
    def _suites_named_once(self) -> EvaluationConfig:
        names = [p.name for p in self.perturbations]
        clashing = sorted({n for n in names if names.count(n) > 1 or n == "none" or not n})
        if clashing:
            raise ValueError(f"evaluation.perturbations: each suite needs its own name (not 'none'), got {clashing}")
        return self

    @model_validator(mode="after")
    def _seed_ranges_disjoint(self) -> EvaluationConfig:
        span = max(self.episodes, self.perturbed_episodes)
        if abs(self.test_seed - self.seed) < span:
            raise ValueError(f"validation seeds [{self.seed}, +{span}) and test seeds [{self.test_seed}, +{span}) overlap")
        return self


class PolicyConfig(_Strict):
    """Sizes and inputs of the tiny VLA (apo_core/policy/configuration_apo_vla.py)."""

    state_inputs: Literal["proprio", "proprio+goal", "proprio+objects"] = "proprio+goal"
    use_image: bool = Field(True, description="False: no vision tower; the world need not render while it acts")
    patch_size: int = Field(16, ge=2)
    vision_hidden_size: int = Field(64, ge=8)
    vision_layers: int = Field(2, ge=1)
    hidden_size: int = Field(128, ge=16)
    decoder_layers: int = Field(2, ge=1)


Method = Literal["bc", "dagger", "sirius", "dpo", "kto", "apo"]
UPDATE_METHODS = ("dagger", "sirius", "dpo", "kto", "apo")  # round k+1 from round k (all but bc)


class TrainConfig(_Strict):
    """Behaviour cloning (round 0) and the preference update (round k+1 from round k)."""

    seed: int = 0
    threads: int = Field(2, ge=1)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: CUDA when the machine has a GPU")
    checkpoint_every: int = Field(200, ge=1)
    # behaviour cloning, full parameters, from random init
    bc_steps: int = Field(2000, ge=1)
    bc_batch_size: int = Field(32, ge=1)
    bc_lr: float = Field(3e-4, gt=0, le=1)
    aux_weight: float = Field(1.0, ge=0, description="auxiliary continuous-action regression (grounds the image)")
    augment_shift: int = Field(4, ge=0, description="random-shift augmentation, pixels")
    # the update of round k+1 from round k (APO_SPEC.md §6)
    epochs: float = Field(50, gt=0, description="passes over the human-correction steps (the authors' unit: 50)")
    update_params: Literal["lora", "full"] = Field("lora", description="LoRA on the decoder, or every parameter")
    batch_size: int = Field(8, ge=2)
    lr: float = Field(5e-5, gt=0, le=1)
    warmup_steps: int = Field(10, ge=0)
    lora_r: int = Field(32, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    # the APO loss (APO_SPEC.md §5)
    beta: float = Field(0.1, gt=0)
    beta_d: float = Field(1.0, ge=0)
    beta_u: float = Field(1.0, ge=0)
    z0_clamp: tuple[float | None, float | None] | None = (-5.0, 5.0)
    z0_mode: Literal["mismatched", "exact"] = "mismatched"
    weight_norm: Literal["batch", "subset"] = "batch"
    ignore_gripper_when_undesirable: bool = True
    ratios: dict[Literal["correct", "human", "failure"], float] = Field(
        default_factory=lambda: {"correct": 0.5, "human": 0.25, "failure": 0.25}
    )
    autonomous_is_correct: bool = Field(False, description="the public code's choice; the paper's is False")

    @model_validator(mode="after")
    def _ranges_ordered(self) -> TrainConfig:
        low, high = self.z0_clamp or (None, None)
        if low is not None and high is not None and low > high:
            raise ValueError(f"train.z0_clamp must be [low, high] with low <= high, got [{low}, {high}]")
        if set(self.ratios) != {"correct", "human", "failure"} or any(v < 0 for v in self.ratios.values()):
            raise ValueError(f"train.ratios needs non-negative shares for correct, human and failure, got {self.ratios}")
        if self.ratios["human"] <= 0:
            raise ValueError("train.ratios.human must be > 0: an epoch is a pass over the human-correction steps")
        if self.sirius_intervention_share + self.sirius_pre_intervention_share >= 1:
            raise ValueError("train.sirius_intervention_share + sirius_pre_intervention_share must be < 1 "
                             "(the rest is the demos' and robot steps' share)")
        return self
    desirable_mass_ratio: float | None = Field(
        None, gt=0, description="KTO-style balance: rescale λ so Σλ_D / Σλ_U = this (None: as the formula gives)")
    nll_weight: float = Field(0.0, ge=0, description="NLL anchor on desirable samples (TRL's rpo_alpha); 0 = none")
    # Sirius-style intervention-weighted BC (method "sirius"): loss mass per class
    sirius_intervention_share: float = Field(0.5, gt=0, lt=1)
    sirius_pre_intervention_share: float = Field(0.002, ge=0, lt=1)


class DatasetConfig(_Strict):
    """Where datasets are versioned (a git + DVC workspace) and pushed (the DVC remote)."""

    workspace: Path | None = Field(None, description="git repo holding datasets.dvc and lineage/ (default: <workdir>/workspace)")
    remote: str | None = Field(None, description="a directory, or s3://bucket/prefix (default: <workdir>/dvc-remote)")
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint (default: AWS_ENDPOINT_URL / AWS)")


class RegistryConfig(_Strict):
    """The model store: a directory or s3://bucket/prefix; the promote gate's thresholds."""

    url: str | None = Field(None, description="default: <workdir>/model-store")
    s3_endpoint_url: str | None = None
    promote_rule: Literal["significant", "point"] = Field(
        "significant", description="significant: the paired 95% interval of the gain lies above promote_margin; "
        "point: the paired gain itself exceeds promote_margin")
    promote_margin: float = Field(0.0, ge=-1, le=1, description="gain over the champion (success rate) to beat")
    max_suite_regression: float = Field(
        0.0, ge=0, le=1, description="refuse when any suite is significantly worse than -this (paired 95% interval)")


class PathsConfig(_Strict):
    workdir: Path = Path(".apo")

    @property
    def episodes(self) -> Path:
        return self.workdir / "episodes"

    @property
    def models(self) -> Path:
        return self.workdir / "models"


class ApoConfig(_Strict):
    env: EnvConfig = Field(default_factory=EnvConfig)
    takeover: TakeoverConfig = Field(default_factory=TakeoverConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    collect: CollectConfig = Field(default_factory=CollectConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    loop_tasks: int = Field(1, ge=1, description="the loop runs on the first N of env.tasks")
    paths: PathsConfig = Field(default_factory=PathsConfig)

    @model_validator(mode="after")
    def _patches_tile_the_image(self) -> ApoConfig:
        if self.policy.use_image and self.env.image_size % self.policy.patch_size:
            raise ValueError(f"policy.patch_size {self.policy.patch_size} must divide env.image_size "
                             f"{self.env.image_size}")
        return self

    @property
    def dataset_workspace(self) -> Path:
        return self.dataset.workspace or self.paths.workdir / "workspace"

    @property
    def dataset_remote(self) -> str:
        return self.dataset.remote or str(self.paths.workdir / "dvc-remote")

    @property
    def registry_url(self) -> str:
        return self.registry.url or str(self.paths.workdir / "model-store")

    def perturbation(self, name: str) -> PerturbationConfig:
        for perturbation in self.evaluation.perturbations:
            if perturbation.name == name:
                return perturbation
        known = [p.name for p in self.evaluation.perturbations]
        raise ConfigError(f"unknown perturbation suite {name!r}; expected one of {known}")


def _describe(error: ValidationError, source: str) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(top level)"
        given = item.get("input")
        shown = "" if isinstance(given, dict) else f" (got {given!r})"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {field}: {message}{shown}")
    return "; ".join(lines)


def _read_yaml(source: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(source.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ApoConfig:
    """Load and validate a YAML config layered over configs/default.yaml.

    A user file only needs the keys it changes (mappings merge key by key; lists are
    replaced whole). ``overrides`` is a nested dict merged last (the CLI's flags).
    Raises :class:`ConfigError` naming the file and field on any problem.
    """
    source = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    merged = _read_yaml(DEFAULT_CONFIG_PATH)
    if source != DEFAULT_CONFIG_PATH:
        merged = _deep_merge(merged, _read_yaml(source))
    merged = _deep_merge(merged, overrides or {})
    try:
        return ApoConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(source))) from None


def with_overrides(config: ApoConfig, overrides: dict[str, Any], source: str = "command line") -> ApoConfig:
    """``config`` with a nested dict of overrides, validated like a file (errors name ``source``)."""
    try:
        return ApoConfig.model_validate(_deep_merge(config.model_dump(mode="json"), overrides))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
