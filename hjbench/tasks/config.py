"""The ``[tasks]`` section of a grid file: downstream inverse problems as a grid axis.

    [tasks]
    kinds = ["denoise", "compressed_sensing", "deblur"]   # hjbench.tasks.problems.KINDS
    noise = [1.0, 2.0]            # noise std sigma per task (operators have ||A||_2 = 1)
    n_signals = 64                # held-out clean signals per cell (int >= 1)
    cs_ratio = 0.5                # compressed sensing: m = ceil(cs_ratio * dim) < dim rows
    blur_kernel = [0.2, 0.6, 0.2] # deblurring: odd-length 1-D kernel, length <= every dim
    blur_boundary = "circular"    # "circular" (circulant) or "zero" (zero-padded)
    solvers = ["fista", "admm", "fista_ls"]   # hjbench.tasks.solvers: ista, fista, fista_ls, admm
    max_iter = 300                # iteration cap per solve (int >= 1)
    tol = 1e-4                    # stop when ||x+ - z|| <= tol per signal (absolute, > 0)

Every key is optional (the defaults are those shown, except ``kinds = ["denoise",
"compressed_sensing"]`` and ``solvers = ["fista", "admm"]``). The proximal-gradient solvers take
the step t of the prox, which must not exceed 1/L = sigma^2 / ||A||^2 = sigma^2: with the grid's
t known, a noise level sigma < sqrt(t) beside such a solver is refused here (ADMM serves every
sigma). Each rule broken raises one ConfigError line
``config: tasks.<key>=<value>: <rule>; allowed: <...>``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

from .problems import BOUNDARIES, KINDS
from .solvers import SOLVERS

__all__ = ["TasksConfig", "validate_tasks", "TASK_KEYS"]

TASK_KEYS = ("kinds", "noise", "n_signals", "cs_ratio", "blur_kernel", "blur_boundary", "solvers", "max_iter",
             "tol")
_LIMITS = {"n_signals": 100_000, "max_iter": 1_000_000}


@dataclass(frozen=True)
class TasksConfig:
    """A validated ``[tasks]`` section (see the module docstring for each field)."""

    kinds: tuple[str, ...] = ("denoise", "compressed_sensing")
    noise: tuple[float, ...] = (1.0, 2.0)
    n_signals: int = 64
    cs_ratio: float = 0.5
    blur_kernel: tuple[float, ...] = (0.2, 0.6, 0.2)
    blur_boundary: str = "circular"
    solvers: tuple[str, ...] = ("fista", "admm")
    max_iter: int = 300
    tol: float = 1e-4

    def to_dict(self) -> dict:
        """JSON-ready (lists for tuples): for run.json and the run-id hash."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _fail(key: str, value: Any, rule: str, allowed: Any) -> NoReturn:
    from ..run.schema import fail

    fail(f"tasks.{key}", value, rule, allowed)


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def _choices(key: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or len(set(map(str, value))) != len(value):
        _fail(key, value, "must be a non-empty list of distinct names", allowed)
    for v in value:
        if v not in allowed:
            _fail(key, value, f"{v!r} is unknown", allowed)
    return tuple(value)


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _LIMITS[key]:
        _fail(key, value, f"must be an integer in 1..{_LIMITS[key]}", "e.g. 64")
    return value


def _noise(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list) or not value or not all(_is_number(v) and v > 0 for v in value):
        _fail("noise", value, "must be a non-empty list of finite numbers > 0 (noise std sigma)", "e.g. [1.0, 2.0]")
    if len(set(value)) != len(value):
        _fail("noise", value, "must not repeat a level", "distinct numbers > 0")
    return tuple(float(v) for v in value)


def _kernel(value: Any, dims: tuple[int, ...]) -> tuple[float, ...]:
    if not isinstance(value, list) or not value or not all(_is_number(v) for v in value):
        _fail("blur_kernel", value, "must be a non-empty list of finite numbers", "e.g. [0.2, 0.6, 0.2]")
    if len(value) % 2 == 0 or len(value) > min(dims):
        _fail("blur_kernel", value, f"must have odd length <= the smallest dim ({min(dims)})",
              "e.g. [0.2, 0.6, 0.2]")
    if not any(v != 0 for v in value):
        _fail("blur_kernel", value, "must not be all zeros", "e.g. [0.2, 0.6, 0.2]")
    return tuple(float(v) for v in value)


def _cs_ratio(value: Any, dims: tuple[int, ...]) -> float:
    if not _is_number(value) or not 0 < value < 1:
        _fail("cs_ratio", value, "must be a number in (0, 1)", "e.g. 0.5")
    for d in dims:
        if math.ceil(value * d) >= d:
            _fail("cs_ratio", value, f"gives m = ceil(cs_ratio * dim) = {math.ceil(value * d)} >= dim = {d} rows "
                  "(compressed sensing needs m < dim)", f"cs_ratio <= {(d - 1) / d:.3g} for dim {d}")
    return float(value)


def validate_tasks(raw: dict | None, *, dims, t: float | None = None) -> TasksConfig | None:
    """Check a raw ``[tasks]`` table and build a :class:`TasksConfig` (None when ``raw`` is None).

    Args:
        raw: the table as read from TOML (None: the grid has no downstream tasks).
        dims: the grid's dims (cs_ratio must give m < dim and the kernel must fit every dim).
        t: the grid's prox time; when given, fista / fista_ls / ista beside a noise level
            sigma < sqrt(t) is refused (their step t would exceed 1/L = sigma^2).
    """
    if raw is None:
        return None
    if not isinstance(raw, dict):
        _fail("", raw, "must be a table", TASK_KEYS)
    for key, value in raw.items():
        if key not in TASK_KEYS:
            _fail(key, value, "unknown key", TASK_KEYS)
    dims = tuple(int(d) for d in dims)
    base = TasksConfig()
    cfg = TasksConfig(
        kinds=_choices("kinds", raw["kinds"], KINDS) if "kinds" in raw else base.kinds,
        noise=_noise(raw["noise"]) if "noise" in raw else base.noise,
        n_signals=_int("n_signals", raw.get("n_signals", base.n_signals)),
        cs_ratio=_cs_ratio(raw.get("cs_ratio", base.cs_ratio), dims),
        blur_kernel=_kernel(raw.get("blur_kernel", list(base.blur_kernel)), dims),
        blur_boundary=raw.get("blur_boundary", base.blur_boundary),
        solvers=_choices("solvers", raw["solvers"], SOLVERS) if "solvers" in raw else base.solvers,
        max_iter=_int("max_iter", raw.get("max_iter", base.max_iter)),
        tol=raw.get("tol", base.tol))
    if cfg.blur_boundary not in BOUNDARIES:
        _fail("blur_boundary", cfg.blur_boundary, "unknown boundary rule", BOUNDARIES)
    if not _is_number(cfg.tol) or cfg.tol <= 0:
        _fail("tol", cfg.tol, "must be a finite number > 0", "e.g. 1e-4")
    stepped = [s for s in cfg.solvers if s != "admm"]
    if t is not None and stepped and min(cfg.noise) < math.sqrt(t) * (1 - 1e-9):
        _fail("noise", list(cfg.noise), f"{stepped[0]} takes the step t={t:g}, which needs every sigma >= "
              f"sqrt(t) = {math.sqrt(t):.3g} (1/L = sigma^2)", f"noise >= {math.sqrt(t):.3g}, or solvers = [\"admm\"]")
    return TasksConfig(**{**asdict(cfg), "tol": float(cfg.tol)})
