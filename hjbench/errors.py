"""Errors and argument checks shared by every component.

Every error raised for bad input names the argument, the rule it broke, the value it got
and what is allowed, in one line, so that a bad grid fails at construction with a message a
user can act on (docs/method.md, convention C15).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:  # torch is imported where a tensor is checked, so `hjbench --help` stays fast
    import torch

__all__ = [
    "HJBenchError",
    "ConfigError",
    "NotFittedError",
    "NotProvidedError",
    "RunError",
    "check_choice",
    "check_positive",
    "check_int",
    "check_points",
    "check_finite",
]


class HJBenchError(Exception):
    """Base class of every error hjbench raises on purpose."""


class ConfigError(HJBenchError, ValueError):
    """A parameter, grid entry or input broke a rule; the message says which and how to fix it."""


class NotFittedError(HJBenchError, RuntimeError):
    """A learned quantity was asked of a method before ``fit`` was called."""


class NotProvidedError(HJBenchError, NotImplementedError):
    """A method was asked for an output it declares it does not provide (e.g. a prior)."""


class RunError(HJBenchError):
    """A run folder, or a file in it, cannot be used: missing, unreadable, foreign, another
    schema version, or locked by another run. The message says which file and what to do."""


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``, else raise a ConfigError naming both."""
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{name}={_fmt(value)} is not allowed; choose one of {allowed}")
    return value


def check_positive(name: str, value: Any, *, strict: bool = True, upper: float | None = None,
                   upper_strict: bool = True) -> float:
    """Return ``float(value)`` if it is a finite number > 0 (>= 0 if not strict), below ``upper``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}={_fmt(value)} must be a number")
    value = float(value)
    rule = "> 0" if strict else ">= 0"
    if not math.isfinite(value) or (value <= 0 if strict else value < 0):
        raise ConfigError(f"{name}={_fmt(value)} must be finite and {rule}")
    if upper is not None and (value >= upper if upper_strict else value > upper):
        sign = "<" if upper_strict else "<="
        raise ConfigError(f"{name}={_fmt(value)} must be {rule} and {sign} {upper}")
    return value


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= ``minimum`` (bools are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name}={_fmt(value)} must be an integer >= {minimum}")
    if value < minimum:
        raise ConfigError(f"{name}={value} must be an integer >= {minimum}")
    return value


def check_points(name: str, x: Any, dim: int) -> "torch.Tensor":
    """Check that ``x`` is a floating tensor of shape (..., dim); no silent broadcasting.

    Returns ``x`` unchanged (never a copy, never with ``requires_grad`` flipped).
    """
    import torch

    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{name} must be a torch.Tensor of shape (..., {dim}), got {type(x).__name__}")
    if not x.is_floating_point():
        raise ConfigError(f"{name} must have a floating dtype (float32 or float64), got {x.dtype}")
    if x.ndim == 0 or x.shape[-1] != dim:
        raise ConfigError(
            f"{name} has shape {tuple(x.shape)}; its last axis must be dim={dim} (shape (..., {dim}))"
        )
    return x


def check_finite(name: str, x: "torch.Tensor") -> "torch.Tensor":
    """Raise if ``x`` holds NaN or infinite entries."""
    import torch

    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ConfigError(f"{name} holds {bad} NaN or infinite entries; all values must be finite")
    return x
