"""A process's copy of a saved policy, loaded once and reused by every episode it plays.

Workers (Ray's, or the flow's own process) evaluate chunk after chunk and collect episode
after episode with the same round's model: they load it once. The key is the directory
and its weights file's size and modification time, so a directory that now holds another
model (a rollback's re-download) is loaded afresh. Callers must not train the returned
policy: an update loads its own copy (``ApoVlaPolicy.from_pretrained``).
"""

from __future__ import annotations

from pathlib import Path

from apo_core.policy.modeling_apo_vla import WEIGHTS_FILE, ApoVlaPolicy

_LOADED: dict[tuple, ApoVlaPolicy] = {}
_KEEP = 4  # a worker switches between a champion and a candidate or two, no more


def cached_policy(directory: str | Path) -> ApoVlaPolicy:
    """The policy saved in ``directory``, loaded at most once per version of its weights."""
    directory = Path(directory).resolve()
    weights = (directory / WEIGHTS_FILE).stat() if (directory / WEIGHTS_FILE).exists() else None
    key = (str(directory), None if weights is None else (weights.st_size, weights.st_mtime_ns))
    if key not in _LOADED:
        policy = ApoVlaPolicy.from_pretrained(directory)  # raises FileNotFoundError naming what is missing
        while len(_LOADED) >= _KEEP:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = policy
    return _LOADED[key]
