"""OpenVLA-style action tokens (docs/apo.md §4), generic over the action dim D.

    normalise:  a_n = clip(2 (a - q01) / (q99 - q01 + 1e-8) - 1, -1, 1)   per dim,
                with q01/q99 the 1%/99% quantiles of the expert actions;
    bins:       256 uniform edges on [-1, 1] -> 255 bins, bin centre c_b = (e_b + e_{b+1}) / 2;
    token:      b = digitize(a_n, edges) - 1 clipped to [0, 254]  (one of 256 reserved ids);
    decode:     a_n = c_b, then a = (a_n + 1) (q99 - q01 + 1e-8) / 2 + q01.

Round-trip error in normalised space is at most half a bin width (1/255) for actions
inside [q01, q99]. The statistics are saved with the model (``to_dict``/``from_dict``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_BINS = 256  # reserved token ids per action dim; the last edge leaves 255 usable bins
EPS = 1e-8


@dataclass(frozen=True)
class ActionTokenizer:
    """Per-dim quantile normalisation and uniform binning of continuous actions."""

    q01: np.ndarray  # [D]
    q99: np.ndarray  # [D]
    n_bins: int = N_BINS

    def __post_init__(self):
        q01 = np.asarray(self.q01, dtype=np.float64)
        q99 = np.asarray(self.q99, dtype=np.float64)
        if q01.shape != q99.shape or q01.ndim != 1:
            raise ValueError(f"q01 and q99 must be 1-D of equal length, got {q01.shape} and {q99.shape}")
        if np.any(q99 < q01):
            raise ValueError("q99 must be >= q01 in every dim")
        object.__setattr__(self, "q01", q01)
        object.__setattr__(self, "q99", q99)

    @classmethod
    def fit(cls, actions: np.ndarray, n_bins: int = N_BINS) -> ActionTokenizer:
        """Statistics from expert actions [N, D]."""
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or len(actions) == 0:
            raise ValueError(f"fit needs expert actions of shape [N, D], got {actions.shape}")
        return cls(np.quantile(actions, 0.01, axis=0), np.quantile(actions, 0.99, axis=0), n_bins)

    @property
    def action_dim(self) -> int:
        return len(self.q01)

    @property
    def edges(self) -> np.ndarray:
        return np.linspace(-1.0, 1.0, self.n_bins)

    @property
    def centers(self) -> np.ndarray:
        edges = self.edges
        return (edges[:-1] + edges[1:]) / 2.0

    @property
    def bin_width(self) -> float:
        return 2.0 / (self.n_bins - 1)

    def scale(self, actions: np.ndarray) -> np.ndarray:
        """q01 -> -1, q99 -> +1, not clipped: what the out-of-range label filter looks at."""
        return 2.0 * (np.asarray(actions, dtype=np.float64) - self.q01) / (self.q99 - self.q01 + EPS) - 1.0

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        return np.clip(self.scale(actions), -1.0, 1.0)

    def unnormalize(self, normalized: np.ndarray) -> np.ndarray:
        return (np.asarray(normalized, dtype=np.float64) + 1.0) * (self.q99 - self.q01 + EPS) / 2.0 + self.q01

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Actions [..., D] -> bin indices [..., D] in [0, n_bins - 2]."""
        bins = np.digitize(self.normalize(actions), self.edges) - 1
        return np.clip(bins, 0, self.n_bins - 2).astype(np.int64)

    def decode_normalized(self, bins: np.ndarray) -> np.ndarray:
        return self.centers[np.clip(np.asarray(bins), 0, self.n_bins - 2)]

    def decode(self, bins: np.ndarray) -> np.ndarray:
        """Bin indices [..., D] -> actions [..., D] (bin centres, unnormalised)."""
        return self.unnormalize(self.decode_normalized(bins))

    def to_dict(self) -> dict:
        return {"q01": self.q01.tolist(), "q99": self.q99.tolist(), "n_bins": self.n_bins}

    @classmethod
    def from_dict(cls, data: dict) -> ActionTokenizer:
        return cls(np.array(data["q01"]), np.array(data["q99"]), int(data["n_bins"]))
