"""The run folder: the one owner of every path, reader and writer of a run (results/README.md).

Layout of ``results/<run-id>/``::

    run.json          resolved config, command line, versions, code version, hardware, times, counts
    trials.jsonl      one JSON object per finished trial, appended, flushed and fsync'ed
    trials.parquet    the same rows (last row per trial_id), rewritten atomically
    summary.parquet   per-cell statistics (hjbench.present.summary.summarize)
    sections/         cross-sections of fitted methods, one parquet file per trial
    figures/ tables/ report/ bound_report.md     written by the presenting commands
    .lock             held (flock) by the one process writing the run

``trials.jsonl`` is the source of truth: a killed run loses at most the trials that were
running. A half-written last line (the process died mid-write) is ignored with a warning on
reading and cut off before the next append. NaN is written as JSON ``null``. Only the driver
process writes; workers return rows as values.

Every reader checks ``schema_version`` and the columns: a foreign, corrupt or newer file is
one :class:`~hjbench.errors.RunError` line naming the file and what to do, never a traceback
or a report built from garbage.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from pathlib import Path

from .. import SCHEMA_VERSION
from ..errors import RunError
from .durable import atomic_write_bytes, jsonable, write_parquet
from .rows import check_row, check_schema, frame, jsonl_rows, read_json_object

__all__ = ["IDENTITY_COLUMNS", "STATUS_COLUMNS", "STATUSES", "RETRIED_ONCE", "RunFolder", "trial_columns",
           "run_id_for", "atomic_write_bytes", "load_trials", "write_parquet", "is_run_folder"]

IDENTITY_COLUMNS = ("schema_version", "run_id", "trial_id", "code_version", "method", "method_params",
                    "prior", "prior_params", "dim", "n_samples", "repetition", "seed", "method_seed", "t",
                    "regime", "box", "device", "dtype")
STATUS_COLUMNS = ("status", "message")
STATUSES = ("ok", "skipped", "failed", "diverged", "timeout", "crashed", "oom")
RETRIED_ONCE = ("crashed", "oom", "timeout")  # a resume retries these once, then keeps the row
_NOT_IN_RUN_ID = ("description", "timeout_s", "threads", "device_requested")  # performance/notes only


def trial_columns() -> tuple[str, ...]:
    """Every column of a trial row, in schema order (identity, metrics, status)."""
    from ..score.metrics import METRIC_COLUMNS

    return IDENTITY_COLUMNS + tuple(METRIC_COLUMNS) + STATUS_COLUMNS


def run_id_for(config_dict: dict, fresh: bool = False) -> str:
    """``<name>-<10 hex of the resolved config>``; ``fresh`` appends a UTC timestamp.

    The description, the timeout, the thread count and the requested (vs resolved) device are
    left out of the hash: changing them resumes the same run (timed-out trials then run again).
    Every other setting (seeds, grid, budget, method and prior parameters, t, box, n_test,
    dtype, device, thresholds) can change a result and is in the hash.
    """
    import datetime as _dt

    from ..seeds import digest

    ident = {k: v for k, v in config_dict.items() if k not in _NOT_IN_RUN_ID}
    run_id = f"{config_dict['name']}-{digest(ident)[:10]}"
    if fresh:
        run_id += "-" + _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3]
    return run_id


def is_run_folder(path: Path) -> bool:
    return any((Path(path) / f).exists() for f in ("run.json", "trials.jsonl", "trials.parquet"))


class RunFolder:
    """Paths, readers and writers of one run folder (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fh = None

    # -- paths ---------------------------------------------------------------------------------
    run_json = property(lambda self: self.path / "run.json")
    jsonl = property(lambda self: self.path / "trials.jsonl")
    parquet = property(lambda self: self.path / "trials.parquet")
    summary_parquet = property(lambda self: self.path / "summary.parquet")
    sections_dir = property(lambda self: self.path / "sections")
    figures_dir = property(lambda self: self.path / "figures")
    tables_dir = property(lambda self: self.path / "tables")
    report_dir = property(lambda self: self.path / "report")
    bound_report = property(lambda self: self.path / "bound_report.md")

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    # -- the writer's lock ---------------------------------------------------------------------
    def lock(self) -> "RunFolder":
        """Take the folder's exclusive lock (non-blocking); a second writer gets one RunError line."""
        self.path.mkdir(parents=True, exist_ok=True)
        fh = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunError(f"--out={str(self.path)!r}: another hjbench run ({holder}) is writing to this "
                           "folder; wait for it to finish, or use another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._lock_fh = fh
        return self

    def unlock(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    # -- run.json --------------------------------------------------------------------------------
    def read_run_json(self, *, required: bool = False) -> dict:
        """run.json as a dict ({} when absent and not ``required``); checked, see the module docstring."""
        path = self.run_json
        if not path.exists():
            if required:
                raise RunError(f"{path}: missing; allowed: a run folder written by `hjbench run`")
            return {}
        info = read_json_object(path)
        check_schema(path, info.get("schema_version"))
        for key, kind in (("config", dict), ("run_id", str)):
            if key in info and not isinstance(info[key], kind):
                raise RunError(f"{path}: {key!r} is not a {kind.__name__}; the file is foreign or damaged; "
                               "allowed: a run.json written by `hjbench run`")
        return info

    def write_run_json(self, info: dict) -> None:
        text = json.dumps(jsonable({"schema_version": SCHEMA_VERSION, **info}), indent=2, sort_keys=False)
        atomic_write_bytes(self.run_json, (text + "\n").encode())

    # -- trials ------------------------------------------------------------------------------------
    def append(self, row: dict) -> None:
        """Append one row to trials.jsonl; flushed and fsync'ed before returning."""
        line = json.dumps(jsonable(row), allow_nan=False, separators=(",", ":")) + "\n"
        with open(self.jsonl, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    def repair(self) -> int:
        """Cut a half-written last line off trials.jsonl (with a warning); return the bytes removed."""
        path = self.jsonl
        if not path.exists():
            return 0
        data = path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return 0
        warnings.warn(f"{path}: ignored a half-written last line ({len(data) - keep} bytes); "
                      "the trial it described will run again", stacklevel=2)
        with open(path, "r+b") as fh:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        return len(data) - keep

    def rows(self) -> list[dict]:
        """Rows of trials.jsonl, checked (a half-written LAST line is skipped with a warning)."""
        return list(jsonl_rows(self.jsonl))

    def attempts(self) -> dict[str, list[str]]:
        """trial_id -> statuses of its rows in order (the resume rule reads this)."""
        out: dict[str, list[str]] = {}
        for row in self.rows():
            out.setdefault(row["trial_id"], []).append(row.get("status", ""))
        return out

    def settled(self) -> set[str]:
        """Trials a resume does not run again: last row ok or skipped, or a second
        crashed / oom / timeout row (a resume retries those once, then keeps the row)."""
        done = set()
        for tid, statuses in self.attempts().items():
            last = statuses[-1]
            if last in ("ok", "skipped") or (last in RETRIED_ONCE and sum(s in RETRIED_ONCE for s in statuses) >= 2):
                done.add(tid)
        return done

    def load_trials(self, run_id: str | None = None):
        """All trials as a DataFrame in schema column order, last row per trial_id.

        Reads trials.jsonl, or trials.parquet when there is no jsonl (a committed reference run).
        With ``run_id``, rows of other runs (another configuration) are left out.
        """
        import pandas as pd

        if not self.jsonl.exists() and self.parquet.exists():
            try:
                rows = pd.read_parquet(self.parquet).to_dict("records")
            except Exception as exc:  # noqa: BLE001 (pyarrow raises many kinds for a bad file)
                raise RunError(f"{self.parquet}: cannot be read as parquet ({type(exc).__name__}); "
                               "allowed: a trials.parquet written by hjbench") from None
            for i, row in enumerate(rows):
                check_row(self.parquet, i + 1, row)
        elif self.jsonl.exists():
            rows = self.rows()
        elif self.run_json.exists():
            self.read_run_json()  # a run that has just started: checked, and no rows yet
            rows = []
        else:
            raise RunError(f"{self.path}: no trials.jsonl or trials.parquet; allowed: a run folder "
                           "written by `hjbench run`")
        if run_id is not None:
            rows = [r for r in rows if r.get("run_id") == run_id]
        return frame(rows)

    def compact(self, run_id: str):
        """Rewrite trials.parquet from trials.jsonl (rows of ``run_id`` only); return the DataFrame."""
        df = self.load_trials(run_id)
        write_parquet(df, self.parquet)
        return df

    # -- saved models ------------------------------------------------------------------------------
    models_dir = property(lambda self: self.path / "models")

    def model_path(self, trial_id: str) -> Path:
        return self.models_dir / f"{trial_id}.pt"

    def write_model(self, trial_id: str, state: dict) -> Path:
        """Store a fitted method's state as ``models/<trial_id>.pt`` (``torch.save``, atomic); it
        is read back with ``torch.load(weights_only=True)``, never by unpickling objects."""
        import io

        import torch

        self.models_dir.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        path = self.model_path(trial_id)
        atomic_write_bytes(path, buffer.getvalue())
        return path

    # -- sections ----------------------------------------------------------------------------------
    def write_section(self, trial_id: str, table) -> Path:
        """Store one trial's cross-section table as ``sections/<trial_id>.parquet``."""
        self.sections_dir.mkdir(parents=True, exist_ok=True)
        path = self.sections_dir / f"{trial_id}.parquet"
        write_parquet(table, path)
        return path

    def load_sections(self):
        """Every stored cross-section (``sections.parquet`` and ``sections/*.parquet``) as one
        table, or None when there is none."""
        import pandas as pd

        files = ([self.path / "sections.parquet"] if (self.path / "sections.parquet").exists() else []) + \
            sorted(self.sections_dir.glob("*.parquet"))
        tables = [t for t in (pd.read_parquet(f) for f in files) if len(t)]
        return pd.concat(tables, ignore_index=True) if tables else None


def load_trials(run_dir: str | Path):
    """Every trial of a run folder (see :meth:`RunFolder.load_trials`)."""
    return RunFolder(run_dir).load_trials()
