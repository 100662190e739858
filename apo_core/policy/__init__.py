"""Policies behind one interface (interface.py); the tiny VLA is one implementation
(LeRobot layout: configuration_apo_vla.py + modeling_apo_vla.py).

    interface.py   Policy: what the trainers, evaluator, robots and CLI use
    kinds.py       the implementations by policy.kind; build, load, a pretrained start
    actor.py       a policy deployed as an actor (observation in, action out)
    cache.py       a process's copy of a saved policy, loaded once
"""

from apo_core.policy.cache import cached_policy
from apo_core.policy.configuration_apo_vla import ApoVlaConfig
from apo_core.policy.inputs import instruction_vocab
from apo_core.policy.interface import ActionScores, ActionTokens, Policy, observations_of
from apo_core.policy.kinds import POLICY_KINDS, initial_policy, load_policy
from apo_core.policy.modeling_apo_vla import DECODER_LORA_TARGETS, ApoVlaPolicy

__all__ = ["DECODER_LORA_TARGETS", "POLICY_KINDS", "ActionScores", "ActionTokens", "ApoVlaConfig", "ApoVlaPolicy",
           "Policy", "cached_policy", "initial_policy", "instruction_vocab", "load_policy", "observations_of"]
