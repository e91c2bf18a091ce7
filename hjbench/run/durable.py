"""Durable, atomic file writes (temporary sibling, fsync, rename, fsync of the folder), and JSON
values for run files (NaN -> null, infinities -> "inf")."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "write_parquet", "jsonable"]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tmp_name(path: Path) -> Path:
    """A sibling name no other process or thread can share (pid and a random suffix)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a private temporary sibling, fsync it, rename it onto ``path``, fsync the folder."""
    path = Path(path)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_parquet(df, path: Path) -> None:
    """Write a DataFrame to parquet atomically and durably (as :func:`atomic_write_bytes`)."""
    path = Path(path)
    tmp = _tmp_name(path)
    df.to_parquet(tmp, index=False)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return jsonable(value.item())
    return value
