"""FAST action tokens (π0-FAST): an action chunk as a short, variable-length token sequence
(docs/apo.md §4).

    chunk [H, D] (normalised actions)
      -> DCT over time, per dim (orthonormal)          coefficients [H, D], low frequencies first
      -> round(coefficient · scale), shifted to >= 0    integers, one character each
      -> BPE merges fitted on the demonstrations        token ids

Decoding inverts each step. A sequence that does not give exactly H × D coefficients, or
holds an id the vocabulary does not know, is reported as undecodable (never silently
zeroed): APO then weighs that sample 1. The DCT is scipy's; BPE is the `tokenizers`
library's, fitted here with the whole coefficient range as its alphabet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from scipy.fft import dct, idct
from tokenizers import Tokenizer, models, trainers


@dataclass
class FastTokenizer:
    """A fitted FAST tokenizer for chunks of ``horizon`` steps of ``action_dim`` dims."""

    horizon: int
    action_dim: int
    scale: float
    low: int  # the smallest rounded coefficient: it maps to character 0
    high: int  # the largest: coefficients are clipped to [low, high] before encoding
    bpe: Tokenizer = field(repr=False)

    @classmethod
    def fit(cls, chunks: np.ndarray, *, scale: float = 10.0, vocab_size: int = 256) -> FastTokenizer:
        """Fit the coefficient range and the BPE merges on normalised chunks [N, H, D]."""
        chunks = np.asarray(chunks, dtype=np.float64)
        if chunks.ndim != 3 or len(chunks) == 0:
            raise ValueError(f"FAST needs chunks [N, H, D] to fit on, got shape {chunks.shape}")
        rounded = np.around(dct(chunks, axis=1, norm="ortho") * scale).astype(np.int64)
        low, high = int(rounded.min()), int(rounded.max())
        alphabet = [chr(i) for i in range(high - low + 1)]
        if vocab_size < len(alphabet):
            raise ValueError(f"FAST vocab_size {vocab_size} is below the {len(alphabet)} coefficient values at "
                             f"scale {scale}: raise the vocab size or lower the scale")
        bpe = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, initial_alphabet=alphabet,
                                      show_progress=False, special_tokens=[], max_token_length=10_000)
        bpe.train_from_iterator(("".join(map(chr, (row - low).ravel())) for row in rounded), trainer=trainer)
        return cls(chunks.shape[1], chunks.shape[2], float(scale), low, high, bpe)

    @property
    def vocab_size(self) -> int:
        return self.bpe.get_vocab_size()

    def encode(self, chunks: np.ndarray) -> list[list[int]]:
        """Normalised chunks [N, H, D] -> one token id list per chunk (lengths differ)."""
        chunks = np.asarray(chunks, dtype=np.float64)
        if chunks.shape[1:] != (self.horizon, self.action_dim):
            raise ValueError(f"FAST was fitted on chunks of {self.horizon} x {self.action_dim}, "
                             f"got {chunks.shape[1:]}")
        rounded = np.clip(np.around(dct(chunks, axis=1, norm="ortho") * self.scale), self.low, self.high)
        texts = ["".join(map(chr, (row - self.low).astype(np.int64).ravel())) for row in rounded]
        return [encoding.ids for encoding in self.bpe.encode_batch(texts)]

    def decode(self, token_lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Token id lists -> normalised chunks [N, H, D] and a bool [N]: False where a list
        does not decode (its chunk is then zeros and must not be used)."""
        chunks = np.zeros((len(token_lists), self.horizon, self.action_dim))
        decoded = np.zeros(len(token_lists), dtype=bool)
        for row, ids in enumerate(token_lists):
            pieces = [self.bpe.id_to_token(int(i)) for i in ids]
            if any(piece is None for piece in pieces):
                continue
            values = np.array([ord(c) for c in "".join(pieces)], dtype=np.int64)
            if len(values) != self.horizon * self.action_dim or values.max(initial=0) > self.high - self.low:
                continue
            coefficients = (values + self.low).reshape(self.horizon, self.action_dim) / self.scale
            chunks[row], decoded[row] = idct(coefficients, axis=0, norm="ortho"), True
        return chunks, decoded

    def to_dict(self) -> dict:
        return {"horizon": self.horizon, "action_dim": self.action_dim, "scale": self.scale, "low": self.low,
                "high": self.high, "bpe": json.loads(self.bpe.to_str())}

    @classmethod
    def from_dict(cls, data: dict) -> FastTokenizer:
        return cls(int(data["horizon"]), int(data["action_dim"]), float(data["scale"]), int(data["low"]),
                   int(data["high"]), Tokenizer.from_str(json.dumps(data["bpe"])))
