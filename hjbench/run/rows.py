"""Checked readers of run files: every row and run.json is validated (schema version, required
fields, known columns) and turned into a DataFrame with the catalogue's dtypes. A foreign,
corrupt or newer file is one :class:`~hjbench.errors.RunError` line naming the file."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Iterator

from .. import SCHEMA_VERSION
from ..errors import RunError

__all__ = ["read_json_object", "check_schema", "check_row", "jsonl_rows", "frame"]

_INT_COLUMNS = ("schema_version", "dim", "n_samples", "repetition", "seed", "method_seed")
_STR_COLUMNS = ("run_id", "trial_id", "code_version", "method", "method_params", "prior", "prior_params",
                "regime", "device", "dtype", "status", "message")


def read_json_object(path: Path) -> dict:
    try:
        info = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunError(f"{path}: not readable JSON ({type(exc).__name__}); allowed: a file written by "
                       "`hjbench run`") from None
    if not isinstance(info, dict):
        raise RunError(f"{path}: holds a {type(info).__name__}, not an object; allowed: a file written by "
                       "`hjbench run`")
    return info


def check_schema(path: Path, version: Any) -> None:
    if version != SCHEMA_VERSION:
        raise RunError(f"{path}: schema_version={version!r}, but this hjbench reads version {SCHEMA_VERSION}; "
                       "allowed: a run written by this hjbench version (re-run it, or read it with the "
                       "version that wrote it)")


def check_row(path: Path, line: int, row: dict) -> None:
    check_schema(path, row.get("schema_version"))
    if not isinstance(row.get("trial_id"), str) or not isinstance(row.get("status"), str):
        raise RunError(f"{path}: row {line} has no trial_id or status; the file is foreign or damaged; "
                       "allowed: rows written by `hjbench run`")
    from ..score.catalogue import task_metric

    known = set(_trial_columns())
    unknown = sorted(k for k in row if k not in known and not k.startswith("param_") and task_metric(k) is None)
    if unknown:
        raise RunError(f"{path}: row {line} has unexpected field(s) {unknown[:5]}; allowed: the columns of "
                       f"results/README.md (schema version {SCHEMA_VERSION})")


def jsonl_rows(path: Path) -> Iterator[dict]:
    if not path.exists():
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RunError(f"{path}: cannot be read ({exc.strerror}); allowed: a readable trials.jsonl") from None
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError):
            if i == len(lines) - 1:  # the process died mid-write: the trial runs again on resume
                warnings.warn(f"{path}: ignored a half-written last line ({len(line)} bytes)", stacklevel=3)
                continue
            raise RunError(f"{path}: line {i + 1} is not a JSON object; the file is corrupt or foreign; "
                           "allowed: rows written by `hjbench run`") from None
        check_row(path, i + 1, row)
        yield row


def frame(rows: list[dict]):
    """Rows -> DataFrame in schema order, with the dtypes of the metric catalogue."""
    import pandas as pd

    from ..score import catalogue

    cols = list(_trial_columns())
    text = set(_STR_COLUMNS) | set(catalogue.columns(kind="str")) | set(catalogue.columns(kind="blob"))
    flags = set(catalogue.columns(kind="bool"))
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in cols]
    df = df.reindex(columns=cols + extra)
    if len(df):
        df = df.drop_duplicates("trial_id", keep="last").reset_index(drop=True)
    for c in df.columns:
        if c in _INT_COLUMNS:
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        elif c in text or c.startswith("param_"):
            df[c] = df[c].astype("string")
        elif c in flags:
            df[c] = df[c].astype("boolean")
        elif c in cols:
            df[c] = pd.to_numeric(df[c].replace({"inf": math.inf, "-inf": -math.inf}), errors="coerce").astype("float64")
    return df


def _trial_columns() -> tuple[str, ...]:
    from .folder import trial_columns

    return trial_columns()
