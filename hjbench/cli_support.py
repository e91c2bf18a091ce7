"""What every ``hjbench`` command shares: one-line errors and warnings, exit-code epilogs, tables.

:class:`OneLineGroup` is the command group of :data:`hjbench.cli.app`. It turns every usage
error (``--repetitions abc``, an unknown option, a missing argument), every
:class:`~hjbench.errors.HJBenchError` and every warning into exactly one line on stderr
(``error: <argument>=<value>: <rule>; allowed: <...>; see 'hjbench run --help'``), so a
script or a person sees what to change without a usage block or a traceback. Nothing here
imports torch, pandas or rich at import time: ``hjbench --help`` stays fast.
"""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager

import typer
from typer.core import TyperGroup

try:  # typer >= 0.24 vendors click as typer._click; its exceptions are not click's
    from typer._click import exceptions as click
except ImportError:  # pragma: no cover - older typer on top of click
    from click import exceptions as click

from .errors import HJBenchError

__all__ = ["OneLineGroup", "check_jobs", "check_out", "epilog", "bad_input", "one_line", "console", "fmt", "table", "to_jsonable"]

EXIT_TEXT = {
    0: "success", 1: "some trials failed, diverged, timed out, crashed or ran out of memory (each is a row "
    "with its status and reason)", 2: "bad input: one line on stderr, nothing written",
    3: "a guaranteed method violates its guarantee", 4: "no violation, but a guaranteed cell could not be judged",
    130: "interrupted (SIGINT); finished trials are kept, rerun to resume",
    143: "terminated (SIGTERM); as 130"}
_TYPE_WORDS = {"integer": "an integer", "float": "a number", "boolean": "true or false", "text": "text",
               "path": "a path"}


def epilog(*codes: int) -> str:
    """The 'Exit codes:' paragraph of a command's --help."""
    return "Exit codes: " + "; ".join(f"{c} {EXIT_TEXT[c]}" for c in codes) + "."


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def _value_of(param, argv: list[str]) -> str | None:
    """The raw value given to ``param`` on the command line (for the error line)."""
    for i, arg in enumerate(argv):
        for opt in getattr(param, "opts", []):
            if arg == opt and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(opt + "="):
                return arg[len(opt) + 1:]
    return None


def _describe(param) -> str:
    """What a parameter accepts, from its metavar and help: ``N (repetitions per cell (1-1000))``."""
    meta, text = getattr(param, "metavar", None), getattr(param, "help", None)
    return " ".join(filter(None, [meta, f"({text})" if text else None])) or "see the help"


def usage_line(exc, argv: list[str]) -> str:
    """One line for a click usage error: the argument, its value, the rule and the fix."""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else "hjbench"
    fix = f"see '{path} --help'"
    message = one_line(getattr(exc, "message", None) or exc.format_message()).rstrip(".")
    param = getattr(exc, "param", None)
    if isinstance(exc, click.NoSuchOption):
        close = ", ".join(sorted(exc.possibilities or ()))
        return f"error: {exc.option_name}: no such option of '{path}'; allowed: {close or 'its options'}; {fix}"
    if param is not None:
        opts = getattr(param, "opts", None) or []
        name = opts[0] if opts and param.param_type_name == "option" else (param.metavar or param.name).upper()
        if isinstance(exc, click.MissingParameter):
            return f"error: {name}: is required; allowed: {_describe(param)}; {fix}"
        return f"error: {name}={_value_of(param, argv)!r}: {message}; allowed: {_describe(param)}; {fix}"
    if getattr(exc, "option_name", None):
        return f"error: {exc.option_name}: {message}; {fix}"
    return f"error: {path}: {message}; {fix}"


@contextmanager
def _one_line_warnings():
    """Every warning shown as ``warning: <message>`` on one line while a command runs."""
    previous = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        print(f"warning: {one_line(message)}", file=sys.stderr if file is None else file)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


class OneLineGroup(TyperGroup):
    """A Typer group whose usage errors, bad input and warnings are one line each (module doc)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        with _one_line_warnings():
            try:
                rv = super().main(args=argv, prog_name=prog_name, complete_var=complete_var,
                                  standalone_mode=False, **extra)
                code = rv if isinstance(rv, int) else 0
            except click.NoArgsIsHelpError as exc:
                typer.echo(exc.ctx.get_help())
                code = 0
            except click.ClickException as exc:
                typer.echo(usage_line(exc, argv), err=True)
                code = exc.exit_code
            except HJBenchError as exc:
                typer.echo(f"error: {one_line(exc)}", err=True)
                code = 2
            except typer.Abort:
                typer.echo("interrupted", err=True)
                code = 130
        if not standalone_mode:
            return code
        sys.exit(code)


@contextmanager
def bad_input():
    """An :class:`~hjbench.errors.HJBenchError` (ConfigError, RunError) -> one line and exit 2."""
    try:
        yield
    except HJBenchError as exc:
        typer.echo(f"error: {one_line(exc)}", err=True)
        raise typer.Exit(2) from None


def console(stderr: bool = False):
    import os

    from rich.console import Console

    out = Console(stderr=stderr, highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out.width = 160  # logs and pipes: wide tables rather than truncated cells
    return out


def fmt(v) -> str:
    try:
        return "nan" if v != v else f"{v:.3g}" if abs(v) >= 1e-2 and abs(v) < 1e4 else f"{v:.2e}"
    except TypeError:
        return str(v)


def table(df, title: str = ""):
    from rich.table import Table

    out = Table(title=title or None)
    for col in df.columns:
        out.add_column(str(col), no_wrap=True)
    for row in df.itertuples(index=False):
        out.add_row(*[fmt(v) if isinstance(v, float) else str(v) for v in row])
    return out


def to_jsonable(value):
    """JSON-ready copy: NaN/inf -> None, paths and numpy scalars -> str/float, dataclasses -> dicts."""
    import dataclasses
    import math
    from pathlib import Path

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_jobs(jobs: int | None, scheduler: str | None) -> None:
    """--jobs within 0-1024 and --scheduler a Dask address."""
    import re

    from .errors import ConfigError

    if jobs is not None and not 0 <= jobs <= 1024:
        raise ConfigError(f"--jobs={jobs}: is out of range; allowed: 0 (inline) to 1024 worker processes")
    if scheduler is not None and not re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+(:\d{1,5})?/?", scheduler):
        raise ConfigError(f"--scheduler={scheduler!r}: is not a Dask scheduler address; allowed: e.g. "
                          "tcp://host:8786")


def check_out(run_dir) -> None:
    """--out must be a folder that exists and is writable, or one that can be created: a
    private probe folder is made and removed in its nearest existing ancestor (root ignores
    permission bits, so ``os.access`` alone would pass a read-only folder)."""
    import os
    import tempfile
    from pathlib import Path

    from .errors import ConfigError

    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out={str(run_dir)!r}: is a file; allowed: a folder (existing or new)")
    probe = run_dir if run_dir.exists() else next((p for p in run_dir.parents if p.exists()), Path("."))
    try:
        if not probe.is_dir():
            raise NotADirectoryError(f"{probe} is not a folder")
        os.rmdir(tempfile.mkdtemp(prefix=".hjbench-probe-", dir=probe))
    except OSError as exc:
        raise ConfigError(f"--out={str(run_dir)!r}: {str(probe)!r} is not a writable folder "
                          f"({exc.strerror or exc}); allowed: a folder this user can write") from None
