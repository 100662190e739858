"""Where things run and are kept: the dataset's versioning, the model store and its gate,
the Ray cluster of the fan-out, and the working directory."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from apo_core.config.base import Section


class DatasetConfig(Section):
    """Where datasets are versioned (a git + DVC workspace) and pushed (the DVC remote)."""

    workspace: Path | None = Field(None, description="the git repository holding datasets/, datasets.dvc and "
                                   "lineage/ (null: {paths.workdir}/workspace; `.` versions in this repository)")
    remote: str | None = Field(None, description="the DVC remote: a directory or s3://bucket/prefix (null: "
                               "{paths.workdir}/dvc-remote); S3 credentials come from the usual AWS environment")
    s3_endpoint_url: str | None = Field(None, description="an S3-compatible endpoint, e.g. http://127.0.0.1:9000 "
                                        "(null: AWS_ENDPOINT_URL, else AWS)")


class RegistryConfig(Section):
    """The model store (write-once rounds, the champion pointer, the audit log) and the
    promote gate's thresholds (docs/apo.md §11)."""

    url: str | None = Field(None, description="a directory or s3://bucket/prefix (null: {paths.workdir}/model-store)")
    s3_endpoint_url: str | None = Field(None, description="an S3-compatible endpoint (null: AWS_ENDPOINT_URL, "
                                        "else AWS)")
    promote_rule: Literal["significant", "point"] = Field(
        "significant", description="significant: the paired 95% interval of the gain over the champion lies "
        "above promote_margin; point: the paired gain itself does")
    promote_margin: float = Field(0.0, ge=-1, le=1, description="the gain over the champion (success rate) to beat")
    max_suite_regression: float = Field(
        0.0, ge=0, le=1, description="refuse a candidate significantly worse than -this on any suite "
        "(paired 95% interval)")


class ClusterConfig(Section):
    """Where the fan-out runs: the robots' collection at once and evaluation in chunks
    (docs/deployment.md §4)."""

    engine: Literal["ray", "local"] = Field("ray", description="ray: Prefect's RayTaskRunner; local: every step in "
                                            "the flow's own process, one after another")
    address: str | None = Field(None, description="an existing Ray cluster: auto or host:6379 (null: start a "
                                "local one for the run)")
    num_cpus: int | None = Field(None, ge=1, description="CPUs of a local Ray (null: all cores)")
    eval_chunk_episodes: int = Field(50, ge=1, description="evaluation seeds per parallel task")
    update_cpus: int = Field(1, ge=1, description="CPUs the update holds on the cluster, and its torch threads "
                             "there")


class PathsConfig(Section):
    """Where the loop keeps its files (their layout: apo_core/workdir.py)."""

    workdir: Path = Field(Path(".apo"), description="episodes, rounds, deployed models, reports; by default also "
                          "the dataset workspace, the DVC remote and the model store")
