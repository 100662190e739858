"""The project's typed configuration: one pydantic model per concern, each field with its
default and description (the one source of defaults), loaded from YAML and the command line.

    base.py      the strict, frozen base of every section
    world.py     env, takeover, labels, collect, evaluation (and its perturbation suites)
    learning.py  policy (one section class per kind, registered by kind), train
    services.py  dataset, registry, cluster, paths
    root.py      ApoConfig: every section
    loading.py   defaults <- file <- command line, with where each value came from
    render.py    configs/default.yaml, docs/configuration.md and `apo config show`, generated
"""

from apo_core.config.learning import (
    POLICY_CONFIGS,
    UPDATE_METHODS,
    APOConfig,
    DPOConfig,
    KTOConfig,
    Method,
    PolicyConfig,
    SiriusConfig,
    TrainConfig,
)
from apo_core.config.loading import load_config, load_with_sources, parse_assignments, with_overrides
from apo_core.config.root import ApoConfig
from apo_core.config.services import ClusterConfig, DatasetConfig, PathsConfig, RegistryConfig
from apo_core.config.world import (
    CollectConfig,
    EnvConfig,
    EvaluationConfig,
    LabelConfig,
    PerturbationConfig,
    TakeoverConfig,
)

__all__ = ["POLICY_CONFIGS", "UPDATE_METHODS", "APOConfig", "ApoConfig", "DPOConfig", "KTOConfig", "SiriusConfig",
           "ClusterConfig", "CollectConfig", "DatasetConfig", "EnvConfig", "EvaluationConfig", "LabelConfig",
           "Method", "PathsConfig", "PerturbationConfig", "PolicyConfig", "RegistryConfig", "TakeoverConfig",
           "TrainConfig", "load_config", "load_with_sources", "parse_assignments", "with_overrides"]
