"""The whole configuration: one section per concern."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from apo_core.config.base import Section
from apo_core.config.learning import DEFAULT_POLICY_KIND, POLICY_CONFIGS, PolicyConfig, TrainConfig
from apo_core.config.services import ClusterConfig, DatasetConfig, PathsConfig, RegistryConfig
from apo_core.config.world import (
    CollectConfig,
    EnvConfig,
    EvaluationConfig,
    LabelConfig,
    PerturbationConfig,
    TakeoverConfig,
)
from apo_core.errors import ConfigError
from apo_core.policy.configuration_apo_vla import ApoVlaPolicyConfig
from apo_core.workdir import default_dvc_remote, default_model_store, default_workspace


class ApoConfig(Section):
    """Every setting of the pipeline. A config file names only what it changes."""

    env: EnvConfig = Field(default_factory=EnvConfig, description="the simulated world")
    takeover: TakeoverConfig = Field(default_factory=TakeoverConfig, description="the simulated human")
    labels: LabelConfig = Field(default_factory=LabelConfig, description="per-step APO labels")
    collect: CollectConfig = Field(default_factory=CollectConfig, description="collection by the fleet")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description="seeded evaluation")
    policy: PolicyConfig = Field(default_factory=POLICY_CONFIGS[DEFAULT_POLICY_KIND],
                                 description="the policy: its kind, sizes and inputs (each kind has its own fields)")
    train: TrainConfig = Field(default_factory=TrainConfig, description="behaviour cloning and the update")
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="dataset versioning")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="the model store and the gate")
    cluster: ClusterConfig = Field(default_factory=ClusterConfig, description="where the fan-out runs")
    loop_tasks: int = Field(2, ge=1, description="the loop runs on the first N of env.tasks")
    paths: PathsConfig = Field(default_factory=PathsConfig, description="where the loop keeps its files")

    @model_validator(mode="after")
    def _patches_tile_the_image(self) -> ApoConfig:
        if self.policy.tiles_image and self.env.image_size % self.policy.patch_size:
            raise ValueError(f"policy.patch_size {self.policy.patch_size} must divide env.image_size "
                             f"{self.env.image_size} (the SigLIP tower tiles the image in patches)")
        return self

    @model_validator(mode="after")
    def _estimated_objects_are_learned(self) -> ApoConfig:
        estimates = isinstance(self.policy, ApoVlaPolicyConfig) and self.policy.estimate_objects
        if estimates and self.train.aux_object_weight <= 0:
            raise ValueError("policy.estimate_objects needs a trained object head (train.aux_object_weight > 0)")
        return self

    @model_validator(mode="after")
    def _chunk_fits_an_episode(self) -> ApoConfig:
        if self.policy.chunk_size > self.env.max_steps:
            raise ValueError(f"policy.chunk_size {self.policy.chunk_size} does not fit an episode of env.max_steps "
                             f"{self.env.max_steps} steps")
        return self

    @model_validator(mode="after")
    def _collection_apart_from_evaluation(self) -> ApoConfig:
        """Collection must never play a validation or test seed (docs/apo.md §12)."""
        first, last = self.collect.seed_range
        for name, (low, high) in (("validation", self.evaluation.seed_range),
                                  ("test", self.evaluation.test_seed_range)):
            if first < high and low < last:
                raise ValueError(f"collect.seed: collection seeds [{first}, {last}) overlap the {name} seeds "
                                 f"[{low}, {high})")
        return self

    @property
    def dataset_workspace(self) -> Path:
        return self.dataset.workspace or default_workspace(self.paths.workdir)

    @property
    def dataset_remote(self) -> str:
        return self.dataset.remote or str(default_dvc_remote(self.paths.workdir))

    @property
    def registry_url(self) -> str:
        return self.registry.url or str(default_model_store(self.paths.workdir))

    def perturbation(self, name: str) -> PerturbationConfig:
        for perturbation in self.evaluation.perturbations:
            if perturbation.name == name:
                return perturbation
        known = [p.name for p in self.evaluation.perturbations]
        raise ConfigError(f"unknown perturbation suite {name!r}; expected one of {known}")
