"""The policy implementations by ``policy.kind`` (each names its ``policy:`` section class,
``config_class``; the sections by kind: apo_core/config/learning.py), and how a policy comes
to be: built fresh from its section and the demonstrations, or loaded from a directory (a
stored round, or a pretrained checkpoint named by ``policy.pretrained``)."""

from __future__ import annotations

import json
from pathlib import Path

from apo_core.errors import ApoError
from apo_core.policy.interface import CONFIG_FILE, Policy
from apo_core.policy.modeling_apo_vla import ApoVlaPolicy
from apo_core.policy.modeling_paligemma_fast import PaliGemmaFastPolicy

POLICY_KINDS: dict[str, type[Policy]] = {kind.kind: kind for kind in (ApoVlaPolicy, PaliGemmaFastPolicy)}
LEGACY_KIND = ApoVlaPolicy.kind  # saved before config.json named its kind


def saved_kind(directory: str | Path) -> str:
    """The ``kind`` a saved policy's config.json names; raises FileNotFoundError without one."""
    path = Path(directory) / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory}: not a saved policy, missing {CONFIG_FILE}")
    try:
        kind = json.loads(path.read_text()).get("kind", LEGACY_KIND)
    except (ValueError, AttributeError):
        raise FileNotFoundError(f"{path}: not a policy's config (expected a JSON object)") from None
    if kind not in POLICY_KINDS:
        raise FileNotFoundError(f"{path}: a policy of kind {kind!r}, expected one of {sorted(POLICY_KINDS)}")
    return kind


def load_policy(directory: str | Path) -> Policy:
    """The policy saved in ``directory``, whatever its kind."""
    return POLICY_KINDS[saved_kind(directory)].from_pretrained(directory)


def initial_policy(policy_config, demonstrations, *, image_size: int, action_dim: int, gripper_dim: int,
                   seed: int) -> Policy:
    """Round 0's starting point: ``policy.pretrained`` loaded and checked against the world,
    or a fresh policy of ``policy.kind`` built from the demonstrations."""
    if policy_config.pretrained is None:
        return POLICY_KINDS[policy_config.kind].build(policy_config, demonstrations, image_size=image_size,
                                                      action_dim=action_dim, gripper_dim=gripper_dim, seed=seed)
    where = f"policy.pretrained: {policy_config.pretrained}"
    if not Path(policy_config.pretrained).is_dir():
        raise ApoError(f"{where}: no such directory")
    try:
        kind = saved_kind(policy_config.pretrained)
    except FileNotFoundError as error:
        raise ApoError(f"{where}: {error}") from None
    if kind != policy_config.kind:
        raise ApoError(f"{where}: a policy of kind {kind!r}, but policy.kind is {policy_config.kind!r}")
    try:
        policy = load_policy(policy_config.pretrained)
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        raise ApoError(f"{where}: cannot be loaded: {str(error).splitlines()[0]}") from None
    dims = policy.action_normalizer.action_dim
    if dims != action_dim:
        raise ApoError(f"{where}: its action statistics have {dims} dims, the world's actions {action_dim}")
    return policy
