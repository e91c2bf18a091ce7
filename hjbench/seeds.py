"""Stable seeds and trial identities (docs/method.md, convention C12).

Every seed is an integer read off a SHA-256 digest of canonical JSON (sorted keys, compact
separators), never Python's ``hash()`` (salted per process for strings), so the same trial has
the same seed on every machine, in every process, in every Python version.

* data seed   = H(base seed, prior, prior params, dim, n_samples, repetition, t, regime, box)
  shared by every method of a cell, so methods are compared on the same samples (docs/method.md section 6);
* method seed = H(data seed, method name), so two methods of a cell do not share an
  initialisation stream, and changing one method's parameters does not move another's seed;
* trial id    = the first 16 hex digits of SHA-256 of the full identity (everything above
  plus the method's parameters, device, dtype and the evaluation settings).

    >>> data_seed(0, "l1", {}, 2, 100, 0, 1.0, "values", 4.0) == data_seed(
    ...     0, "l1", {}, 2, 100, 0, 1.0, "values", 4.0)
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

__all__ = ["plain", "canonical_json", "stable_int", "data_seed", "method_seed", "trial_id", "digest"]

_SEED_BITS = 63  # fits an int64 column and torch.Generator.manual_seed


def plain(value: Any) -> Any:
    """Map tuples/sets/paths/non-finite floats to JSON-stable plain values."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # "nan", "inf": JSON has no literal for them
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def canonical_json(obj: Any) -> str:
    """JSON text with sorted keys and no spaces: equal objects give equal strings."""
    return json.dumps(plain(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def digest(obj: Any) -> str:
    """Hex SHA-256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode("ascii")).hexdigest()


def stable_int(obj: Any) -> int:
    """A non-negative 63-bit integer derived from ``obj`` (stable across processes)."""
    return int(digest(obj)[:16], 16) & ((1 << _SEED_BITS) - 1)


def data_seed(base_seed: int, prior: str, prior_params: dict, dim: int, n_samples: int,
              repetition: int, t: float, regime: str, box: float) -> int:
    """Seed of the data of one cell: shared by every method evaluated on that cell."""
    return stable_int({"kind": "data", "base_seed": int(base_seed), "prior": prior,
                       "prior_params": prior_params, "dim": int(dim), "n_samples": int(n_samples),
                       "repetition": int(repetition), "t": float(t), "regime": regime,
                       "box": float(box)})


def method_seed(data_seed_: int, method: str) -> int:
    """Seed of a method's own randomness (initialisation, mini-batches) within a cell."""
    return stable_int({"kind": "method", "data_seed": int(data_seed_), "method": method})


def trial_id(identity: dict) -> str:
    """Short (16 hex digits) stable id of a trial's full identity dictionary."""
    return digest({"kind": "trial", **identity})[:16]
