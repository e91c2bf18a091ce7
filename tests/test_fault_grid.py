"""A grid of misbehaving methods, concurrent runs, signals and kills: every trial ends as one row.

The fault-injection plug-in (tests/fault_plugin.py) is registered in the driver and in the
Dask workers through ``HJBENCH_PLUGINS`` and ``PYTHONPATH``. Every run here is a real
``python -m hjbench run`` process: one with a real 2-worker cluster for the faults and the
signals, inline (``--jobs 0``) ones where only the driver matters (the folder lock, SIGKILL).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}", "HJBENCH_PLUGINS": "fault_plugin",
       "OMP_NUM_THREADS": "1"}
FAULTS = {"fault_raise": ("failed", "RuntimeError: injected fault"), "fault_hang_py": ("timeout", "timed out"),
          "fault_hang_c": ("timeout", "held the GIL"), "fault_exit": ("failed", "SystemExit: 3"),
          "fault_alloc": ("oom", "memory limit exceeded"), "fault_segv": ("crashed", "SIGSEGV")}
FAULT_GRID = f"""
name = "faults"
dims = [2]
n_samples = [16]
n_test = 16
n_cross = 5
device = "cpu"
timeout_s = 8            # covers a fresh worker's imports on a busy 2-core machine
memory_limit_mb = 1500
methods = {json.dumps([*FAULTS, "maxplus"])}
priors = ["l1"]
"""
SLEEPY_GRID = """
name = "sleepy"
dims = [2]
n_samples = [8, 16, 32, 64]
repetitions = 3
n_test = 8
n_cross = 5
device = "cpu"
methods = ["fault_sleepy"]
priors = ["l1"]

[method_params.fault_sleepy]
seconds = {seconds}
"""
# asyncio's report of a nanny's log_event on a closed comm at cluster shutdown (distributed);
# not an hjbench line: reported to the executor's owner, filtered here so the test stays exact
_DASK_SHUTDOWN_NOISE = ("Task exception was never retrieved", "CommClosedError")


def _cmd(out: Path, jobs: int, config: str = "grid.toml") -> list[str]:
    return [sys.executable, "-m", "hjbench", "run", "--config", config, "--out", str(out), "--jobs", str(jobs),
            "--no-progress", "--no-figure"]


def _rows(run_dir: Path) -> list[dict]:
    path = run_dir / "trials.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for_rows(run_dir: Path, n: int, proc, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(_rows(run_dir)) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{run_dir} did not reach {n} rows")


def test_every_fault_is_one_row_one_line_and_the_run_goes_on(tmp_path):
    (tmp_path / "grid.toml").write_text(FAULT_GRID)
    proc = subprocess.run(_cmd(tmp_path / "out", 2), env=ENV, cwd=tmp_path, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = {r["method"]: r for r in _rows(tmp_path / "out")}
    assert len(_rows(tmp_path / "out")) == len(rows) == len(FAULTS) + 1
    assert rows["maxplus"]["status"] == "ok"
    for method, (status, reason) in FAULTS.items():
        assert rows[method]["status"] == status and reason in rows[method]["message"], rows[method]
        printed = [ln for ln in proc.stdout.splitlines() if ln.startswith(f"{status}: {method} ")]
        assert len(printed) == 1 and reason in printed[0], proc.stdout
    assert rows["fault_segv"]["peak_memory_mb"] > 50, rows["fault_segv"]  # the crashed worker's peak
    noise = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in proc.stderr or any(n in proc.stderr for n in _DASK_SHUTDOWN_NOISE), proc.stderr
    assert not [ln for ln in noise if ln.startswith("error")], proc.stderr
    assert "trials: 1 ok, 2 failed, 2 timeout, 1 crashed, 1 oom" in proc.stdout


def test_a_second_run_into_the_same_folder_refuses_in_one_line(tmp_path):
    (tmp_path / "grid.toml").write_text(SLEEPY_GRID.format(seconds=0.3))
    first = subprocess.Popen(_cmd(tmp_path / "out", 0), env=ENV, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    _wait_for_rows(tmp_path / "out", 1, first)
    second = subprocess.run(_cmd(tmp_path / "out", 0), env=ENV, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1 and "another hjbench run" in second.stderr, second.stderr
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    ids = [r["trial_id"] for r in _rows(tmp_path / "out")]
    assert len(ids) == len(set(ids)) == 12


@pytest.mark.parametrize("sig, code, flag", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_a_signal_stops_the_run_with_its_code_and_a_complete_run_json(tmp_path, sig, code, flag):
    (tmp_path / "grid.toml").write_text(SLEEPY_GRID.format(seconds=0.4))
    run_dir = tmp_path / "out"
    proc = subprocess.Popen(_cmd(run_dir, 1), env=ENV, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    _wait_for_rows(run_dir, 2, proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, out + err
    info = json.loads((run_dir / "run.json").read_text())
    assert info[flag] is True and info["ended"] and info["counts"]["pending"] > 0
    assert f"{flag}:" in out and "Traceback" not in err
    kept = {r["trial_id"] for r in _rows(run_dir)}
    again = subprocess.run(_cmd(run_dir, 0), env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    ids = [r["trial_id"] for r in _rows(run_dir)]
    assert kept <= set(ids) and len(ids) == len(set(ids)) == 12
    assert f"({len(kept)} resumed)" in again.stdout


def test_sigkill_at_10_random_moments_loses_and_duplicates_nothing(tmp_path):
    (tmp_path / "grid.toml").write_text(SLEEPY_GRID.format(seconds=0.15))
    run_dir, rng, finished = tmp_path / "out", random.Random(20240607), set()
    for _ in range(10):
        proc = subprocess.Popen(_cmd(run_dir, 0), env=ENV, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 3.0))  # from the imports to the last trials: every phase is hit
        proc.kill()
        proc.wait(timeout=30)
        rows = _rows(run_dir)
        ids = [r["trial_id"] for r in rows]
        assert len(ids) == len(set(ids)), "a finished trial ran twice"
        assert finished <= set(ids), "a finished trial was lost"
        finished = set(ids)
    final = subprocess.run(_cmd(run_dir, 0), env=ENV, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    ids = [r["trial_id"] for r in _rows(run_dir)]
    assert len(ids) == len(set(ids)) == 12 and finished <= set(ids)
    assert all(r["status"] == "ok" for r in _rows(run_dir))
