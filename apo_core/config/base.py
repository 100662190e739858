"""The base of every config section: strict, frozen, finite."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Unknown keys are refused (a typo must not silently fall back to a default), and so
    are non-finite numbers (``promote_margin: .nan`` would promote anything)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
