"""What the policy kinds' configurations share (LeRobot style: each kind's configuration
sits next to its model, in configuration_<kind>.py).

Each kind has two: its ``policy:`` section of the pipeline's config (a pydantic
:class:`PolicySection`, the one source of a fresh policy's defaults, validated at the
door), and the dataclass saved as the policy's ``config.json`` (:class:`SavedPolicyConfig`),
which adds what the demonstrations and the world give (image size, state statistics, the
instruction vocabulary). No torch here: apo_core.config imports these modules.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Literal

from pydantic import Field

from apo_core.config.base import Section

StateInputs = Literal["proprio", "proprio+goal", "proprio+objects"]
GOAL_DIMS = 3  # the goal position: the last 3 entries of the environment state


class PolicySection(Section):
    """The fields every policy kind reads; each kind's section adds its own and names its
    ``kind``."""

    # Declared here so that ``kind`` leads every kind's section; each kind narrows it to its name.
    kind: str = Field(description="the implementation (docs/policies.md)")
    pretrained: Path | None = Field(None, description="a saved policy directory to start round 0 from (behaviour "
                                    "cloning fine-tunes it); null: built fresh from this section")
    state_inputs: StateInputs = Field(
        "proprio", description="the low-dim state it reads: the hand (proprio), + the goal, or + the privileged "
        "object poses and the goal (the fast state-only option, configs/state.yaml)")
    use_image: bool = Field(True, description="true: an image encoder reads the camera (the world then renders "
                            "whenever the policy decides)")
    patch_size: int = Field(16, ge=2, description="the SigLIP tower's patch side, pixels (must divide "
                            "env.image_size)")
    vision_hidden_size: int = Field(64, ge=8, description="image encoder width")
    vision_layers: int = Field(2, ge=1, description="the SigLIP tower's transformer layers")
    hidden_size: int = Field(128, ge=16, description="the language model's (decoder's) width")
    decoder_layers: int = Field(2, ge=1, description="the language model's (decoder's) layers")
    chunk_size: int = Field(4, ge=1, description="H: actions predicted per decision and executed open-loop (the "
                            "world renders and the policy decodes every H steps; a takeover drops the rest)")

    @property
    def tiles_image(self) -> bool:
        """Whether a SigLIP tower cuts the image into ``patch_size`` patches."""
        raise NotImplementedError


class SavedPolicyConfig:
    """What each kind's saved config (a dataclass, ``config.json``) shares: made from the
    section and the data, saved and loaded with the policy's ``kind``.

    A saved config's dataclass defaults are those of a config.json written before the
    field existed, so that it still loads; a fresh policy takes every value from its
    section (:meth:`from_section`), never from them.
    """

    proprio_dim: int
    environment_state_dim: int
    state_inputs: StateInputs

    @classmethod
    def from_section(cls, section: PolicySection, **derived):
        """The section's fields this config has by name, then ``derived`` (what the data
        and the world give, and sizes the section implies), which wins."""
        names = {field.name for field in fields(cls)}
        return cls(**{**{name: value for name, value in section if name in names}, **derived})

    @property
    def state_dim(self) -> int:
        extra = {"proprio": 0, "proprio+goal": GOAL_DIMS, "proprio+objects": self.environment_state_dim}
        return self.proprio_dim + extra[self.state_inputs]

    def save(self, path: Path, kind: str) -> None:
        path.write_text(json.dumps({"kind": kind, **asdict(self)}, indent=2))

    @classmethod
    def load(cls, path: Path):
        data = json.loads(path.read_text())
        data.pop("kind", None)
        return cls(**data)
