"""Policies behind one interface (interface.py), two implementations registered by
``policy.kind`` (LeRobot layout: configuration_<kind>.py + modeling_<kind>.py).

    interface.py       Policy: what the trainers, evaluator, robots and CLI use
    configuration.py   what the kinds' configurations share: the policy: section, the saved config.json
    pretrained.py      the base of the implementations: the section class each names, its config's answers
    kinds.py           the implementations by policy.kind; build, load, a pretrained start
    configuration_apo_vla.py, modeling_apo_vla.py
                       the tiny VLA: one token per action dim and chunk step (OpenVLA-style bins)
    configuration_paligemma_fast.py, modeling_paligemma_fast.py
                       the π0-FAST layout: PaliGemma emitting FAST tokens of an action chunk
    conv_encoder.py    the conv + spatial-softmax image encoder (robomimic's VisualCore)
    inputs.py          the instruction vocabulary and the state a policy reads, standardised
    actor.py           a policy deployed as an actor (observation in, action out)
    cache.py           a process's copy of a saved policy, loaded once

The names below are imported on first use: apo_core.config imports the configuration
modules of this package, and must not import torch with them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# apo_core.config registers this package's configuration classes, which subclass its Section:
# importing it first lets either package be imported first.
import apo_core.config  # noqa: F401

_HOMES = {
    "cached_policy": "cache", "ApoVlaConfig": "configuration_apo_vla", "instruction_vocab": "inputs",
    "ActionScores": "interface", "ActionTokens": "interface", "Policy": "interface", "observations_of": "interface",
    "POLICY_KINDS": "kinds", "initial_policy": "kinds", "load_policy": "kinds",
    "DECODER_LORA_TARGETS": "modeling_apo_vla", "ApoVlaPolicy": "modeling_apo_vla",
}

__all__ = sorted(_HOMES)

if TYPE_CHECKING:
    from apo_core.policy.cache import cached_policy
    from apo_core.policy.configuration_apo_vla import ApoVlaConfig
    from apo_core.policy.inputs import instruction_vocab
    from apo_core.policy.interface import ActionScores, ActionTokens, Policy, observations_of
    from apo_core.policy.kinds import POLICY_KINDS, initial_policy, load_policy
    from apo_core.policy.modeling_apo_vla import DECODER_LORA_TARGETS, ApoVlaPolicy


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
