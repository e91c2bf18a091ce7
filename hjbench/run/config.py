"""Grid configuration: a TOML file, command-line overrides, validated before anything runs.

A grid is methods x priors x dims x n_samples x repetitions at one (t, regime, box). Every key
of the file, with its type, default, bounds and meaning, is in ``docs/config.md``, which is
generated from the table of :mod:`hjbench.run.schema` that the validator
(:mod:`hjbench.run.validate`) checks against. Every rule broken raises one
:class:`~hjbench.errors.ConfigError` line ``config: <key path>=<value>: <rule>; allowed: <...>``.
"""

from __future__ import annotations

import inspect
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..seeds import plain
from .schema import KEYS, TOP_LEVEL, check, fail as _fail

__all__ = ["Component", "GridConfig", "load_config", "apply_overrides", "validate", "read_toml"]

_TOP = TOP_LEVEL
# sane upper bounds of every integer key (from the schema): a typo of a few zeros fails here
LIMITS = {k.name: k.high for k in KEYS if k.kind in ("int", "list") and k.high is not None}




@dataclass(frozen=True)
class Component:
    """A method or prior of the grid: ``params`` are passed to the constructor, ``resolved``
    is what the built object reports (``get_params()``; for a prior ``params()`` per dim, keyed
    by the int dim), i.e. its identity."""

    name: str
    params: dict = field(default_factory=dict)
    resolved: dict = field(default_factory=dict)


@dataclass(frozen=True)
class GridConfig:
    """A validated grid; ``device`` is resolved (``auto`` -> ``cuda`` or ``cpu``)."""

    name: str
    description: str
    seed: int
    repetitions: int
    dims: tuple[int, ...]
    n_samples: dict[int, tuple[int, ...]]
    t: float
    regime: str
    box: float
    n_test: int
    n_cross: int
    device: str
    device_requested: str
    dtype: str
    threads: int
    timeout_s: float | None
    budget: dict
    methods: tuple[Component, ...]
    priors: tuple[Component, ...]
    memory_limit_mb: float | None = None
    opt_limited_ratio: float = 0.5
    backends: tuple[str, ...] = ("torch",)
    tasks: Any = None  # hjbench.tasks.config.TasksConfig or None

    def to_dict(self) -> dict:
        """The resolved configuration (JSON-ready); its hash names the run."""
        comp = lambda cs: [{"name": c.name, "params": plain(c.params), "resolved": plain(c.resolved)}  # noqa: E731
                           for c in cs]
        return {"name": self.name, "description": self.description, "seed": self.seed,
                "repetitions": self.repetitions, "dims": list(self.dims),
                "n_samples": {str(d): list(ns) for d, ns in self.n_samples.items()}, "t": self.t,
                "regime": self.regime, "box": self.box, "n_test": self.n_test, "n_cross": self.n_cross,
                "device": self.device, "device_requested": self.device_requested, "dtype": self.dtype,
                "threads": self.threads, "timeout_s": self.timeout_s, "budget": self.budget,
                "memory_limit_mb": self.memory_limit_mb, "opt_limited_ratio": self.opt_limited_ratio,
                "backends": list(self.backends), "methods": comp(self.methods), "priors": comp(self.priors),
                **({"tasks": self.tasks.to_dict()} if self.tasks is not None else {})}

    @property
    def n_trials(self) -> int:
        per_rep = sum(len(self.n_samples[d]) for d in self.dims)
        return len(self.methods) * len(self.priors) * per_rep * self.repetitions


# -- reading -----------------------------------------------------------------------------------
def read_toml(path: str | Path) -> dict:
    """Parse a TOML file; a syntax error becomes one ConfigError line with its line number."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        _fail("--config", str(path), f"cannot read the file ({exc.strerror or exc})", "a readable TOML file")
    except UnicodeDecodeError as exc:
        _fail("--config", str(path), f"is not UTF-8 text (byte {exc.start})", "a UTF-8 TOML file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        line = int(match.group(1)) if match else max(text.count("\n"), 1)
        rule = re.sub(r"\s*\(at [^)]*\)", "", msg)
        raise ConfigError(f"config: {path}: malformed TOML at line {line}: {rule}; "
                          "allowed: valid TOML (https://toml.io)") from None


def _int_list(option: str, text: Any) -> list[int]:
    if isinstance(text, (list, tuple)):
        return list(text)
    try:
        return [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        _fail(option, text, "must be comma-separated integers", "e.g. 2,4,8")


def _names(option: str, text: Any) -> list[str] | str:
    items = list(text) if isinstance(text, (list, tuple)) else [s.strip() for s in str(text).split(",")]
    items = [s for s in items if s]
    if not items:
        _fail(option, text, "must name at least one entry", "comma-separated names or all")
    return "all" if items == ["all"] else items


def apply_overrides(raw: dict, overrides: dict[str, Any] | None) -> dict:
    """Return ``raw`` with command-line overrides applied (``None`` values are ignored).

    Keys: methods, priors (comma lists; entries already in ``raw`` keep their params), dims,
    n_samples (comma lists of ints; n_samples also drops n_samples_by_dim), repetitions, seed,
    device, dtype, threads, timeout_s, steps (goes to [budget]).
    """
    out = dict(raw)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key in ("methods", "priors"):
            names = _names(f"--{key}", value)
            if names == "all":
                out[key] = "all"
                continue
            listed = raw.get(key) if isinstance(raw.get(key), list) else []
            old = {e.get("name"): e for e in listed if isinstance(e, dict)}
            out[key] = [old.get(n, n) for n in names]
        elif key in ("dims", "n_samples"):
            out[key] = _int_list(f"--{key.replace('_', '-')}", value)
            if key == "n_samples":
                out.pop("n_samples_by_dim", None)
        elif key == "steps":
            budget = raw.get("budget", {})
            out["budget"] = {**budget, "steps": value} if isinstance(budget, dict) else budget
        elif key in ("repetitions", "seed", "device", "dtype", "threads", "timeout_s"):
            out[key] = value
        else:
            _fail(f"--{key}", value, "unknown override", "methods, priors, dims, n_samples, repetitions, "
                  "seed, device, dtype, threads, timeout_s, steps")
    return out


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> GridConfig:
    """Read, override and validate a grid file; raises ConfigError before anything runs."""
    from .validate import validate

    raw = read_toml(path)
    raw.setdefault("name", Path(path).stem)
    return validate(apply_overrides(raw, overrides))


def validate(raw: dict) -> GridConfig:
    """Check every key of a raw grid dictionary (see :func:`hjbench.run.validate.validate`)."""
    from .validate import validate as _validate

    return _validate(raw)


# -- validation ---------------------------------------------------------------------------------
def _int_tuple(path: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        _fail(path, value, "must be a non-empty list of integers", "e.g. [2, 4]")
    items = tuple(check(f"{path}[{i}]", v) for i, v in enumerate(value))
    if len(set(items)) != len(items):
        _fail(path, value, "lists a value twice", "distinct integers >= 1")
    return tuple(sorted(items))


def _none(value: Any) -> Any:
    return None if isinstance(value, str) and value.lower() == "none" else value


def _entries(key: str, value: Any, registry, extra: Any) -> list[tuple[str, dict]]:
    """(name, params) of a ``methods``/``priors`` list (names, "all" or {name, params} tables),
    with ``method_params``/``prior_params`` (``extra``: name -> table) merged over them."""
    names, extra_key = registry.names(), f"{key[:-1]}_params"
    if not isinstance(extra, dict):
        _fail(extra_key, extra, "must be a table of tables", f"[{extra_key}.<name>] tables")
    for name, params in extra.items():
        if name not in names or not isinstance(params, dict):
            _fail(f"{extra_key}.{name}", params, f"unknown {registry.role} or not a table", names)
    value = list(names) if value == "all" else value
    if not isinstance(value, list) or not value:
        _fail(key, value, "must be a non-empty list of names or tables {name, params}", names)
    out: dict[str, dict] = {}
    for i, item in enumerate(value):
        path, item = f"{key}[{i}]", {"name": item} if isinstance(item, str) else item
        if not isinstance(item, dict):
            _fail(path, item, "must be a name or a table {name, params}", names)
        for k in item:
            if k not in ("name", "params"):
                _fail(f"{path}.{k}", item[k], "unknown key", "name, params")
        name, params = item.get("name"), item.get("params", {})
        if not isinstance(name, str) or name not in names:
            _fail(f"{path}.name", name, f"unknown {registry.role}", names)
        if name in out:
            _fail(f"{path}.name", name, "listed twice", f"each {registry.role} once")
        if not isinstance(params, dict):
            _fail(f"{path}.params", params, "must be a table", "a TOML table of constructor keywords")
        out[name] = {k: _none(v) for k, v in {**params, **extra.get(name, {})}.items()}
    return list(out.items())


def _checked_params(path: str, role: str, name: str, cls: type, params: dict, exclude=()) -> list[str]:
    """Refuse keywords the constructor does not take; return the names it takes."""
    sig = inspect.signature(cls.__init__).parameters.values()
    var_kw = any(p.kind is p.VAR_KEYWORD for p in sig)
    accepted = [p.name for p in sig if p.name != "self" and p.name not in exclude
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    for k, v in params.items():
        if k not in accepted and not var_kw:
            _fail(f"{path}.params.{k}", v, f"not a parameter of {role} {name!r}", accepted)
    return accepted if not var_kw else accepted + list(params) + ["*"]


def _build(path: str, name: str | None, build) -> Any:
    """Run a constructor; its ConfigError (or TypeError/ValueError) becomes one config line."""
    where = f"{path} ({name})" if name else path
    try:
        return build()
    except ConfigError as exc:
        raise ConfigError(f"config: {where}: {exc}") from None
    except Exception as exc:  # a constructor that validates with TypeError/ValueError
        raise ConfigError(f"config: {where}: {type(exc).__name__}: {exc}") from None


