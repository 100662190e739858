"""A process's copy of a saved policy, loaded once and reused by every episode it plays.

Workers (Ray's, or the flow's own process) evaluate chunk after chunk and collect episode
after episode with the same round's model: they load it once. The key is the directory
and its files' names, sizes and modification times, so a directory that now holds another
model (a rollback's re-download) is loaded afresh. Callers must not train the returned
policy: an update loads its own copy (:func:`apo_core.policy.kinds.load_policy`).
"""

from __future__ import annotations

from pathlib import Path

from apo_core.policy.interface import Policy
from apo_core.policy.kinds import load_policy

_LOADED: dict[tuple, Policy] = {}
_KEEP = 4  # a worker switches between a champion and a candidate or two, no more


def cached_policy(directory: str | Path) -> Policy:
    """The policy saved in ``directory``, loaded at most once per version of its weights."""
    directory = Path(directory).resolve()
    files = sorted(path for path in directory.iterdir() if path.is_file()) if directory.is_dir() else []
    key = (str(directory), tuple((path.name, path.stat().st_size, path.stat().st_mtime_ns) for path in files))
    if key not in _LOADED:
        policy = load_policy(directory)  # raises FileNotFoundError naming what is missing
        while len(_LOADED) >= _KEEP:
            _LOADED.pop(next(iter(_LOADED)))
        _LOADED[key] = policy
    return _LOADED[key]
