"""The base of the policies built here (LeRobot's ``PreTrainedPolicy``): each names the
``policy:`` section class it is built from, and its saved config answers what the loop
asks of it."""

from __future__ import annotations

from typing import ClassVar

import torch

from apo_core.policy.configuration import PolicySection
from apo_core.policy.interface import Policy


class PretrainedPolicy(Policy):
    """A :class:`Policy` with a saved config (``self.config``) that has ``chunk_size`` and
    ``use_image``."""

    config_class: ClassVar[type[PolicySection]]  # its ``policy:`` section, registered under ``kind``

    @classmethod
    def section(cls, policy_config: PolicySection) -> PolicySection:
        """``policy_config`` if it is this kind's section: another kind's lacks its fields."""
        if not isinstance(policy_config, cls.config_class):
            raise TypeError(f"{cls.__name__} is built from a {cls.config_class.__name__} (policy.kind: {cls.kind}), "
                            f"got policy.kind {policy_config.kind!r}")
        return policy_config

    @property
    def chunk_size(self) -> int:
        return self.config.chunk_size

    @property
    def needs_image(self) -> bool:
        return self.config.use_image

    def register_statistics(self, name: str, mean: list[float] | None, std: list[float] | None, dims: int) -> None:
        """Buffers ``<name>_mean`` and ``<name>_std`` (0 and 1 where the config has none), kept
        out of the state dict: the statistics live in the saved config."""
        for suffix, values, default in (("mean", mean, 0.0), ("std", std, 1.0)):
            values = values if values is not None else [default] * dims
            self.register_buffer(f"{name}_{suffix}", torch.tensor(values).float(), persistent=False)
