"""What the loop runs on."""

from __future__ import annotations

from apo_core.config import ApoConfig


def loop_tasks(config: ApoConfig) -> list[str]:
    """The tasks the loop runs on: the first ``loop_tasks`` of env.tasks."""
    return config.env.tasks[: config.loop_tasks]
