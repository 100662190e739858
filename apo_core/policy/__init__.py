"""The tiny VLA policy (LeRobot layout: configuration_*.py + modeling_*.py)."""

from apo_core.policy.cache import cached_policy
from apo_core.policy.configuration_apo_vla import ApoVlaConfig
from apo_core.policy.modeling_apo_vla import DECODER_LORA_TARGETS, ApoVlaPolicy, PolicyOutput, instruction_vocab

__all__ = ["DECODER_LORA_TARGETS", "ApoVlaConfig", "ApoVlaPolicy", "PolicyOutput", "cached_policy",
           "instruction_vocab"]
