"""Constants shared by `flows.cli` and its command-group modules (kept apart to avoid circular imports)."""

from apo_core.config import UPDATE_METHODS as _METHODS

UPDATE_METHODS = list(_METHODS)
