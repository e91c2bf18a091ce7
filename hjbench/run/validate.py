"""Validation of a raw grid dictionary, one section at a time (the keys: :mod:`hjbench.run.schema`).

Every rule broken raises one :class:`~hjbench.errors.ConfigError` line
``config: <key path>=<value>: <rule>; allowed: <...>`` before anything runs.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError
from .config import _TOP, Component, GridConfig, _build, _checked_params, _entries, _fail, _int_tuple, _none
from .schema import BUDGET_KEYS, check

__all__ = ["validate"]


def _header(raw: dict) -> tuple[str, str]:
    for key, value in raw.items():
        if key not in _TOP:
            _fail(key, value, "unknown key", _TOP)
    for key in ("dims", "methods", "priors"):
        if key not in raw:
            _fail(key, None, "is required", "see configs/default.toml")
    name = raw.get("name", "grid")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name):
        _fail("name", name, "must be 1-100 letters, digits, _ . -", "e.g. default")
    description = raw.get("description", "")
    if not isinstance(description, str):
        _fail("description", description, "must be a string", "free text")
    return name, description


def _sample_counts(raw: dict, dims: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    by_dim_raw = raw.get("n_samples_by_dim", {})
    if not isinstance(by_dim_raw, dict):
        _fail("n_samples_by_dim", by_dim_raw, "must be a table dim -> list of ints", '{"2" = [20000]}')
    by_dim = {}
    for key, value in by_dim_raw.items():
        if not str(key).isdigit() or int(key) < 1:
            _fail(f"n_samples_by_dim.{key}", value, "key must be a dim (integer >= 1)", "e.g. 2 = [20000]")
        by_dim[int(key)] = _int_tuple("n_samples", value)
    common = _int_tuple("n_samples", raw["n_samples"]) if "n_samples" in raw else None
    out = {}
    for d in dims:
        if d not in by_dim and common is None:
            _fail("n_samples", None, f"is required (dim {d} is not in n_samples_by_dim)", "e.g. [100, 300]")
        out[d] = by_dim.get(d, common)
    return out


def _device(raw: dict) -> tuple[str, str]:
    requested = check("device", raw.get("device", "auto"))
    if requested == "cpu":
        return "cpu", requested
    import torch

    available = torch.cuda.is_available()
    if requested == "cuda" and not available:
        _fail("device", "cuda", "CUDA is not available here (torch.cuda.is_available() is False)", "auto, cpu")
    return ("cuda" if available else "cpu"), requested


def _budget(raw: dict) -> dict:
    from ..training import Budget

    budget = raw.get("budget", {})
    if not isinstance(budget, dict):
        _fail("budget", budget, "must be a table", Budget.fields())
    for key, value in budget.items():
        if key not in Budget.fields():
            _fail(f"budget.{key}", value, "unknown key", Budget.fields())
    budget = {k: _none(v) for k, v in budget.items()}
    for key in BUDGET_KEYS:
        if budget.get(key.name) is not None:
            budget[key.name] = check(f"budget.{key.name}", budget[key.name], key)
    _build("budget", None, lambda: Budget(**budget))
    return budget


def _method_params(takes: list[str], params: dict, budget: dict) -> dict:
    """Constructor keywords of one method: the common budget (as one ``budget`` table for methods
    that take a Budget, key by key for those that take budget fields), then its own params."""
    from ..training import Budget

    if "budget" not in takes:
        return {**{k: v for k, v in budget.items() if k in takes or "*" in takes}, **params}
    own = {k: v for k, v in params.items() if k != "budget" and k not in takes and k in Budget.fields()}
    rest = {k: v for k, v in params.items() if k not in own and k != "budget"}
    explicit = params.get("budget") or {}
    if not isinstance(explicit, dict):
        raise ConfigError(f"budget={explicit!r} must be a table of budget keys {list(Budget.fields())}")
    return {**rest, "budget": {**budget, **own, **explicit}}


def _methods(raw: dict, regime: str, budget: dict, backends: tuple[str, ...]) -> tuple[Component, ...]:
    from .. import methods as registry
    from ..data import provides_regime
    from ..training import Budget

    out = []
    for i, (name, params) in enumerate(_entries("methods", raw["methods"], registry.METHODS,
                                                raw.get("method_params", {}))):
        cls = registry.entry(name).cls
        takes = _checked_params(f"methods[{i}]", "method", name,
                                cls, {k: v for k, v in params.items() if k not in Budget.fields()})
        for key in BUDGET_KEYS:
            if params.get(key.name) is not None and key.name not in takes:
                params[key.name] = check(f"method_params.{name}.{key.name}", params[key.name], key)
        full = _build(f"methods[{i}].params", name, lambda: _method_params(takes, params, budget))
        variants = [full] if "backend" not in takes or "backend" in params else \
            [{**full, "backend": b} for b in backends]
        for kw in variants:
            method = _build(f"methods[{i}].params", name, lambda kw=kw: registry.get(name, **kw))
            if not provides_regime(regime, method.data_regime):
                _fail("regime", regime, f"cannot serve method {name!r}, which needs {method.data_regime!r} data",
                      sorted({method.data_regime, "values_and_gradients"}))
            out.append(Component(name, kw, dict(method.get_params())))
    return tuple(out)


def _priors(raw: dict, dims: tuple[int, ...], t: float) -> tuple[Component, ...]:
    from .. import priors as registry

    out = []
    for i, (name, params) in enumerate(_entries("priors", raw["priors"], registry.PRIORS,
                                                raw.get("prior_params", {}))):
        _checked_params(f"priors[{i}]", "prior", name, registry.entry(name).cls, params, ("dim", "t"))
        built = [_build(f"priors[{i}].params at dim={d}, t={t}", name,
                        lambda d=d: registry.get(name, dim=d, t=t, **params)) for d in dims]
        # a family's resolved parameters may depend on dim (minplus: mu_2 = 1/sqrt(dim)), so the
        # identity is kept per dim: the data seed of a cell must not depend on the grid's other dims
        out.append(Component(name, params, {d: dict(b.params()) for d, b in zip(dims, built)}))
    return tuple(out)


def _backends(raw: dict) -> tuple[str, ...]:
    value = raw.get("backends", ["torch"])
    if not isinstance(value, list) or not value or len(set(value)) != len(value):
        _fail("backends", value, "must be a non-empty list of distinct names", "torch, jax")
    return tuple(check(f"backends[{i}]", b) for i, b in enumerate(value))


def _get(raw: dict, key: str) -> Any:
    """Top-level scalar ``key`` checked against its schema row (its default when absent)."""
    from .schema import KEYS

    spec = next(k for k in KEYS if k.name == key)
    return check(key, raw.get(key, spec.default), spec)


def _tasks(raw: dict, dims, t: float):
    from ..tasks.config import validate_tasks

    return validate_tasks(raw.get("tasks"), dims=dims, t=t)


def validate(raw: dict, *, check_sizes: bool = True) -> GridConfig:
    """Check every key of a raw grid dictionary and build a :class:`GridConfig`; with
    ``check_sizes``, also refuse a grid too large for this machine (:mod:`hjbench.run.sizing`)."""
    from .sizing import check_sizes as _sizes

    name, description = _header(raw)
    dims = _int_tuple("dims", raw["dims"])
    t, regime = _get(raw, "t"), _get(raw, "regime")
    device, requested = _device(raw)
    budget, backends = _budget(raw), _backends(raw)
    cfg = GridConfig(
        name=name, description=description, seed=_get(raw, "seed"), repetitions=_get(raw, "repetitions"),
        dims=dims, n_samples=_sample_counts(raw, dims), t=t, regime=regime, box=_get(raw, "box"),
        n_test=_get(raw, "n_test"), n_cross=_get(raw, "n_cross"), device=device, device_requested=requested,
        dtype=_get(raw, "dtype"), threads=_get(raw, "threads"), timeout_s=_get(raw, "timeout_s"), budget=budget,
        methods=_methods(raw, regime, budget, backends), priors=_priors(raw, dims, t),
        memory_limit_mb=_get(raw, "memory_limit_mb"), opt_limited_ratio=_get(raw, "opt_limited_ratio"),
        backends=backends, tasks=_tasks(raw, dims, t))
    if check_sizes:
        _sizes(cfg)
    return cfg
