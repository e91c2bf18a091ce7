"""The grid file's keys as data: one table that the validator checks and docs/config.md renders.

Each :class:`Key` gives a key's type, default, bounds and meaning. :mod:`hjbench.run.validate`
checks every scalar key with :func:`check` against its row, so the bounds in the documentation
are the bounds enforced; :func:`render_markdown` writes ``docs/config.md`` from the same rows
(``python -m hjbench.run.schema > docs/config.md``; a test fails when the file is stale).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NoReturn

from ..errors import ConfigError

__all__ = ["Key", "KEYS", "BUDGET_KEYS", "TOP_LEVEL", "check", "fail", "render_markdown"]


@dataclass(frozen=True)
class Key:
    """One key: ``kind`` int | number | choice | str | list | table; ``low``/``high`` inclusive
    bounds (``low_open``: strictly above ``low``); ``optional``: ``"none"``/absence means None."""

    name: str
    kind: str
    default: Any
    meaning: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    low_open: bool = False
    optional: bool = False
    required: bool = False


_REGIMES = ("values", "values_and_gradients", "prox_pairs")  # hjbench.data.REGIMES (a test checks)
KEYS: tuple[Key, ...] = (
    Key("name", "str", "file stem", "run-id prefix: 1-100 letters, digits, `_ . -`"),
    Key("description", "str", "", "free text, kept in run.json"),
    Key("seed", "int", 0, "base seed; data seeds derive from it (hjbench.seeds)", 0, 2**62),
    Key("repetitions", "int", 1, "repetitions of every cell", 1, 1000),
    Key("dims", "list", None, "dimensions, distinct integers", 1, 4096, required=True),
    Key("n_samples", "list", None, "training sample counts N, distinct integers; required unless "
        "every dim is in n_samples_by_dim", 1, 10**7),
    Key("n_samples_by_dim", "table", {}, "per-dim sample counts, e.g. `2 = [20000]`; a dim listed here "
        "ignores n_samples", 1, 10**7),
    Key("t", "number", 1.0, "HJ time", 0, 1e6, low_open=True),
    Key("regime", "choice", "values_and_gradients", "data sampled for the run", choices=_REGIMES),
    Key("box", "number", 4.0, "inputs uniform on [-box, box]^dim", 0, 1e6, low_open=True),
    Key("n_test", "int", 2000, "held-out points per cell", 1, 10**6),
    Key("n_cross", "int", 401, "points on each cross-section", 2, 10**5),
    Key("device", "choice", "auto", "`auto` picks cuda when available; cuda must be available",
        choices=("auto", "cpu", "cuda")),
    Key("dtype", "choice", "float32", "floating dtype of data and networks", choices=("float32", "float64")),
    Key("threads", "int", 1, "torch CPU threads per trial (torch.set_num_threads)", 1, 1024),
    Key("timeout_s", "number", None, "per-trial wall-clock limit in seconds (fit + evaluation)", 0, 1e7,
        low_open=True, optional=True),
    Key("memory_limit_mb", "number", None, "RSS limit of a worker process (MiB): a runaway trial becomes "
        "an `oom` row", 0, 1e8, low_open=True, optional=True),
    Key("opt_limited_ratio", "number", 0.5, "flag fits whose train/held-out error ratio is above this",
        0, 1e6, low_open=True),
    Key("backends", "list", ["torch"], "a grid axis for methods that take `backend`",
        choices=("torch", "jax")),
    Key("methods", "list", None, 'method names, `"all"`, or `[[methods]]` tables {name, params}', required=True),
    Key("priors", "list", None, 'prior names, `"all"`, or `[[priors]]` tables {name, params}', required=True),
    Key("method_params", "table", {}, "`[method_params.<name>]`: constructor keywords of a listed method "
        "(Budget fields among them override [budget] for it)"),
    Key("prior_params", "table", {}, "`[prior_params.<name>]`: constructor keywords of a prior (built "
        "for every dim)"),
    Key("budget", "table", {}, "the common training budget (below), given to every method that takes one"),
    Key("tasks", "table", None, "optional inverse-problem tasks scored for every fitted method (docs/tasks.md; "
        "validated by hjbench.tasks.config)", optional=True),
)
BUDGET_KEYS: tuple[Key, ...] = (
    Key("steps", "int", 2000, "optimiser steps (the most, in mode converged)", 1, 10**8),
    Key("mode", "choice", "fixed", "`fixed`: exactly `steps`; `converged`: stop on small relative "
        "improvement", choices=("fixed", "converged")),
    Key("tol", "number", 1e-3, "relative improvement below which mode converged stops", 0, 1, low_open=True),
    Key("window", "int", 500, "steps over which the improvement is measured", 1, 10**8),
    Key("check_every", "int", None, "steps between host-side checks (default: steps // 100)", 1, 10**8,
        optional=True),
    Key("batch_size", "int", None, "mini-batch size (none: full batch)", 1, 10**7, optional=True),
    Key("lr", "number", 1e-3, "Adam learning rate", 0, 10, low_open=True),
    Key("lr_decay", "number", 0.1, "factor of each learning-rate cut", 0, 1, low_open=True),
    Key("lr_decay_every", "int", None, "steps between cuts (default: steps // 5)", 1, 10**8, optional=True),
    Key("val_fraction", "number", 0.0, "share of the samples held out for early stopping", 0, 0.99),
    Key("patience", "int", None, "checks without validation improvement before stopping (needs "
        "val_fraction > 0)", 1, 10**6, optional=True),
    Key("width", "int", 256, "hidden width of every network", 1, 65536),
    Key("depth", "int", 2, "hidden layers after the first", 0, 64),
    Key("diverge_factor", "number", 1e4, "a loss above this multiple of the initial loss is divergence",
        1, 1e30, low_open=True),
)
TOP_LEVEL = tuple(k.name for k in KEYS)
_BY_NAME = {k.name: k for k in KEYS} | {f"budget.{k.name}": k for k in BUDGET_KEYS}


def _fmt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(path: str, value: Any, rule: str, allowed: Any) -> NoReturn:
    """Raise the one ConfigError line ``config: <path>=<value>: <rule>; allowed: <allowed>``."""
    if isinstance(allowed, (list, tuple)):
        allowed = ", ".join(str(a) for a in allowed)
    raise ConfigError(f"config: {path}={_fmt(value)}: {rule}; allowed: {allowed}")


def _g(x: float) -> str:
    if isinstance(x, int) or (x.is_integer() and 1e3 <= x < 1e16):
        return f"{int(x):,}"
    return f"{x:g}"


def allowed(key: Key) -> str:
    """The rule of ``key`` in words, e.g. ``integers >= 1 and <= 1,000``."""
    if key.choices:
        return ", ".join(key.choices)
    noun = "integers" if key.kind in ("int", "list", "table") else "numbers"
    parts = []
    if key.low is not None:
        parts.append(f"{'>' if key.low_open else '>='} {_g(key.low)}")
    if key.high is not None:
        parts.append(f"<= {_g(key.high)}")
    text = f"{noun} {' and '.join(parts)}" if parts else "see the meaning"
    return text + (' (or "none")' if key.optional else "")


def check(path: str, value: Any, key: Key | str | None = None) -> Any:
    """``value`` checked against the row ``key`` (default: the row named by ``path``, indices and
    ``n_samples_by_dim.<d>`` folded); None for an optional key given as None or ``"none"``."""
    key = key if isinstance(key, Key) else _BY_NAME[key or _row_name(path)]
    if key.optional and (value is None or (isinstance(value, str) and value.lower() == "none")):
        return None
    if key.choices:
        if not isinstance(value, str) or value not in key.choices:
            fail(path, value, "is not a known choice", key.choices)
        return value
    integer = key.kind in ("int", "list", "table")
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        fail(path, value, f"must be {'an integer' if integer else 'a number'}", allowed(key))
    if not math.isfinite(value) or (key.low is not None and (value <= key.low if key.low_open else value < key.low)) \
            or (key.high is not None and value > key.high):
        fail(path, value, "is out of range", allowed(key))
    return value if integer else float(value)


def _row_name(path: str) -> str:
    name = path.split("[")[0]
    return "n_samples_by_dim" if name.startswith("n_samples_by_dim") else name


def _cell(value: Any) -> str:
    if value is None or value == "file stem":
        return "none" if value is None else value
    return "`" + (f'"{value}"' if isinstance(value, str) else repr(value)) + "`"


def _table(keys: tuple[Key, ...], prefix: str = "") -> list[str]:
    lines = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for k in keys:
        kind = {"list": "array", "choice": "string"}.get(k.kind, k.kind)
        default = "*required*" if k.required else _cell(k.default)
        rule = allowed(k) if (k.choices or k.low is not None or k.high is not None) else ""
        lines.append(f"| `{prefix}{k.name}` | {kind} | {default} | {rule} | {k.meaning} |")
    return lines


def render_markdown() -> str:
    """docs/config.md: every key of a grid file with its type, default, bounds and meaning."""
    head = [
        "# Grid configuration (`configs/*.toml`)", "",
        "<!-- generated by `python -m hjbench.run.schema > docs/config.md` from hjbench/run/schema.py;",
        "     tests/test_config.py fails when this file is stale. Do not edit by hand. -->", "",
        "A grid is methods x priors x dims x n_samples x repetitions at one (t, regime, box). Every key",
        "is checked before the first trial runs; a broken rule is one line on stderr,",
        "`error: config: <key>=<value>: <rule>; allowed: <...>`, and exit code 2. TOML has no null:",
        'the string `"none"` means Python `None` (e.g. `batch_size = "none"` for full batch). Plain',
        "keys come before the first `[table]` header; after it, keys belong to that table.", "",
        "## Top-level keys", ""]
    sizes = [
        "", "## Sizes checked before running", "",
        "Beyond the bounds above, `hjbench run` estimates the memory of every trial from N, dim,",
        "width, depth, n_test and the method family (`hjbench.run.sizing`) and refuses a grid whose",
        "largest job cannot fit in the machine's memory (MemTotal of /proc/meminfo), and a grid of",
        "more than 1,000,000 trials. The estimate is conservative (an upper bound, see its docstring).", ""]
    budget = ["", "## `[budget]`", "",
              "The common training budget (`hjbench.training.Budget`). A method that takes a `budget`",
              "gets this table; Budget fields in `[method_params.<name>]` override it for that method.", ""]
    example = ["", "## Example", "", "```toml", 'name = "default"', "repetitions = 3", "dims = [2, 4]",
               "n_samples = [100, 300]", 'methods = ["hj", "lpn"]', 'priors = ["l1", "minplus"]',
               "timeout_s = 600", "", "[n_samples_by_dim]", "4 = [1000]", "", "[budget]", "steps = 1500",
               "lr = 3e-3", 'mode = "converged"', "", "[method_params.lpn]", "tol = 1e-3", "",
               "[prior_params.l1]", "scale = 2.0", "```", ""]
    return "\n".join(head + _table(KEYS) + budget + _table(BUDGET_KEYS, "budget.") + sizes[:-1] + example)


if __name__ == "__main__":
    print(render_markdown(), end="")
