"""The grid runner: rows, resume, failures as rows, timeouts, kills (issue 3)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

import hjbench.methods as methods
from hjbench import SCHEMA_VERSION
from hjbench.run import folder as results
from hjbench.run.config import load_config
from hjbench.run.config import validate
from hjbench.errors import RunError
from hjbench.methods.base import AbstractMethod
from hjbench.run.grid import expand
from hjbench.run.runner import run_grid
from hjbench.seeds import data_seed, method_seed

ROOT = Path(__file__).resolve().parent.parent
TINY = {"steps": 5, "width": 8, "depth": 1}


def _cfg(**kw):
    raw = {"name": "t", "dims": [2], "n_samples": [16, 32], "repetitions": 1, "n_test": 32, "n_cross": 11,
           "methods": ["hj"], "priors": ["l1"], "budget": dict(TINY), "device": "cpu"}
    raw.update(kw)
    return validate(raw)


def _run(cfg, run_dir: Path, jobs: int = 0):
    """Inline (jobs=0) by default: the stand-ins below are registered in this process only."""
    console = Console(file=io.StringIO(), width=200)
    outcome = run_grid(cfg, run_dir, run_id=run_dir.name, console=console, show_progress=False, jobs=jobs)
    return outcome, console.file.getvalue()


def _jsonl(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "trials.jsonl").read_text().splitlines()]


class _Standin(AbstractMethod):
    """Identity prox; behaviour switched by class attributes so tests can change it."""

    provides = frozenset({"prox"})
    fail = False
    sleep = 0.0
    skip_reason = None
    seen: list = []

    def __init__(self, *, shift: float = 0.0):
        self.shift = shift

    def skip(self, *, device, dim):
        return type(self).skip_reason

    def _fit(self, data, generator):
        type(self).seen.append((self.name, data.n_samples, float(data.x.double().sum())))
        if type(self).fail:
            raise RuntimeError("boom\nsecond line")
        time.sleep(type(self).sleep)

    def _prox(self, x):
        return x + self.shift


@pytest.fixture
def standin():
    """Register fresh stand-in classes under unique names; removed afterwards."""
    made = []

    def make(name, **attrs):
        cls = type(f"Standin_{name}", (_Standin,), {"seen": [], **attrs})
        methods.register(name, cls)
        made.append(name)
        return cls

    yield make
    for name in made:
        methods.METHODS._entries.pop(name, None)


def test_rows_schema_run_json_and_resume(tmp_path):
    import torch

    cfg = _cfg(methods=["hj", "hj_sobolev"], repetitions=2, threads=1)
    threads = torch.get_num_threads()
    out, _ = _run(cfg, tmp_path / "run")
    assert torch.get_num_threads() == threads  # the run's thread count is restored
    assert out.exit_code == 0 and out.counts["ok"] == 8 and out.n_resumed == 0
    rows = _jsonl(tmp_path / "run")
    assert len(rows) == 8 and all(r["schema_version"] == SCHEMA_VERSION and r["status"] == "ok" for r in rows)
    df = results.load_trials(tmp_path / "run")
    n = len(results.trial_columns())
    assert list(df.columns[:n]) == list(results.trial_columns())  # schema columns first, in order
    assert all(c.startswith("param_") for c in df.columns[n:]) and "param_budget_steps" in df.columns
    assert list(results.load_trials(tmp_path / "run").columns) == list(
        pd.read_parquet(tmp_path / "run" / "trials.parquet").columns)
    for _, cell in df.groupby(["n_samples", "repetition"]):
        assert cell["seed"].nunique() == 1 and cell["method_seed"].nunique() == 2
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    for key in ("config", "command", "environment", "started", "ended", "counts", "schema_version"):
        assert key in info
    for key in ("python", "torch", "jax", "numpy", "git", "cpu_model", "torch_threads"):
        assert key in info["environment"]
    assert info["counts"]["ok"] == 8 and info["environment"]["torch_threads"] == 1
    again, _ = _run(cfg, tmp_path / "run")
    assert again.n_resumed == 8 and again.counts["ok"] == 8
    assert len(_jsonl(tmp_path / "run")) == 8  # nothing ran twice


def test_all_methods_of_a_cell_share_the_data(tmp_path, standin):
    a, b = standin("_test_runner_rec_a"), standin("_test_runner_rec_b")
    _run(_cfg(methods=["_test_runner_rec_a", "_test_runner_rec_b"], repetitions=2), tmp_path / "run")
    assert len(a.seen) == len(b.seen) == 4
    assert [s[1:] for s in a.seen] == [s[1:] for s in b.seen]
    assert len({s[2] for s in a.seen}) == 4  # different cells, different samples


def test_failure_becomes_a_row_and_resume_reruns_it(tmp_path, standin):
    flaky = standin("_test_runner_flaky", fail=True)
    cfg = _cfg(methods=["_test_runner_flaky", "hj"])
    out, printed = _run(cfg, tmp_path / "run")
    assert out.exit_code == 1 and out.counts == {"ok": 2, "failed": 2, "skipped": 0, "timeout": 0, "diverged": 0,
                                                 "crashed": 0, "oom": 0, "pending": 0}
    failed = out.trials[out.trials["status"] == "failed"]
    assert set(failed["message"]) == {"RuntimeError: boom second line"}
    assert failed["prox_mse"].isna().all()
    assert printed.count("failed: _test_runner_flaky") == 2
    flaky.fail = False
    again, _ = _run(cfg, tmp_path / "run")
    assert again.exit_code == 0 and again.n_resumed == 2 and again.counts["ok"] == 4


def test_skip_is_a_row_with_its_reason(tmp_path, standin):
    standin("_test_runner_skipper", skip_reason="needs cuda")
    out, printed = _run(_cfg(methods=["_test_runner_skipper"], n_samples=[16]), tmp_path / "run")
    status = dict(zip(out.trials["method"], zip(out.trials["status"], out.trials["message"])))
    assert status["_test_runner_skipper"] == ("skipped", "needs cuda")
    assert out.exit_code == 0


def test_half_written_last_line_is_ignored_with_a_warning(tmp_path):
    cfg = _cfg()
    run_dir = tmp_path / "run"
    _run(cfg, run_dir)
    with open(run_dir / "trials.jsonl", "a") as fh:
        fh.write('{"trial_id": "0123", "status": "o')
    with pytest.warns(UserWarning, match="half-written last line"):
        assert len(results.load_trials(run_dir)) == 2
    with pytest.warns(UserWarning, match="half-written last line"):
        again, _ = _run(cfg, run_dir)
    assert again.n_resumed == 2 and again.exit_code == 0
    assert len(_jsonl(run_dir)) == 2  # the partial line was cut, every line parses


def test_out_folder_of_another_grid_is_refused(tmp_path):
    _run(_cfg(), tmp_path / "run")
    with pytest.raises(RunError, match="another configuration"):
        _run(_cfg(seed=1), tmp_path / "run")


def test_seeds_depend_on_every_input_and_are_stable_across_processes():
    base = (0, "l1", {"scale": 1.0}, 2, 100, 0, 1.0, "values", 4.0)
    seeds = {data_seed(*base)}
    for i, other in enumerate((1, "neg_l1", {"scale": 2.0}, 3, 101, 1, 0.5, "values_and_gradients", 3.0)):
        seeds.add(data_seed(*base[:i], other, *base[i + 1:]))
    assert len(seeds) == 10 and method_seed(1, "hj") != method_seed(1, "lpn")
    cfg = load_config(ROOT / "configs" / "smoke.toml", {"device": "cpu"})
    here = [[t.trial_id, t.identity.seed, t.identity.method_seed] for t in expand(cfg)]
    code = ("import json; from hjbench.run.config import load_config; from hjbench.run.grid import expand; "
            f"cfg = load_config({str(ROOT / 'configs' / 'smoke.toml')!r}, {{'device': 'cpu'}}); "
            "print(json.dumps([[t.trial_id, t.identity.seed, t.identity.method_seed] for t in expand(cfg)]))")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "12345", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == here


PLUGIN = '''
import time
from hjbench import methods
from hjbench.methods.base import AbstractMethod

class Sleepy(AbstractMethod):
    """Stand-in that sleeps in fit (cheap for the shared CPU) and returns the identity prox."""
    provides = frozenset({"prox"})
    def __init__(self, *, seconds: float = 0.15):
        self.seconds = seconds
    def _fit(self, data, generator):
        time.sleep(self.seconds)
    def _prox(self, x):
        return x

methods.register("sleepy_test", Sleepy)

def register():
    pass
'''
KILL_GRID = """
name = "killme"
dims = [2]
n_samples = [8, 16, 32, 64]
repetitions = 3
n_test = 16
n_cross = 5
device = "cpu"
methods = ["sleepy_test"]
priors = ["l1"]
"""


def _wait_for_lines(path: Path, n: int, proc, timeout: float = 90.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {n} lines")


def test_sigint_then_sigkill_then_resume_loses_no_finished_trial(tmp_path):
    (tmp_path / "hjb_test_plugin.py").write_text(PLUGIN)
    (tmp_path / "grid.toml").write_text(KILL_GRID)
    run_dir = tmp_path / "out"
    jsonl = run_dir / "trials.jsonl"
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}", "HJBENCH_PLUGINS": "hjb_test_plugin",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "hjbench", "run", "--config", "grid.toml", "--out", str(run_dir), "--no-progress",
           "--no-figure", "--jobs", "2"]
    popen = lambda: subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,  # noqa: E731
                                     stderr=subprocess.PIPE, text=True)

    proc = popen()
    _wait_for_lines(jsonl, 2, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    info = json.loads((run_dir / "run.json").read_text())
    after_int = {r["trial_id"] for r in _jsonl(run_dir)}
    assert info["interrupted"] is True and 2 <= len(after_int) < 12
    assert len(results.load_trials(run_dir)) == len(pd.read_parquet(run_dir / "trials.parquet"))

    proc = popen()
    _wait_for_lines(jsonl, len(after_int) + 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    with open(jsonl, "a") as fh:  # as if killed mid-write
        fh.write('{"schema_version": 2, "trial_id": "dead')
    finished = [json.loads(line)["trial_id"] for line in jsonl.read_text().splitlines()[:-1]]
    assert after_int <= set(finished)

    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "half-written last line" in proc.stderr and "Traceback" not in proc.stderr
    rows = _jsonl(run_dir)
    ids = [r["trial_id"] for r in rows]
    assert len(set(ids)) == 12 and len(ids) == 12  # every trial once: none lost, none rerun
    assert set(finished) <= set(ids) and all(r["status"] == "ok" for r in rows)
    assert (run_dir / "summary.parquet").exists()


def test_prior_identity_is_per_dim_and_independent_of_other_dims():
    """minplus resolves mu_2 = 1/sqrt(dim): each dim's trials carry their own parameters, and a
    cell's data seed is the same whether or not the grid holds other dims."""
    both = expand(_cfg(dims=[2, 4], priors=["minplus"], n_samples=[16]))
    alone = expand(_cfg(dims=[4], priors=["minplus"], n_samples=[16]))
    by_dim = {t.identity.dim: t.identity for t in both}
    assert len(json.loads(by_dim[4].prior_params)["mus"][1]) == 4
    assert len(json.loads(by_dim[2].prior_params)["mus"][1]) == 2
    assert alone[0].identity.seed == by_dim[4].seed
    assert alone[0].identity.prior_params == by_dim[4].prior_params


def test_divergence_is_a_row_not_a_success_and_stays_out_of_summaries(tmp_path):
    from hjbench.present.summary import summarize

    out, printed = _run(_cfg(methods=["hj"], n_samples=[32], budget={**TINY, "steps": 50, "lr": 10.0}), tmp_path / "run")
    assert set(out.trials["status"]) == {"diverged"} and out.exit_code == 1
    assert "diverged: hj" in printed
    assert all("stage" in r and "diverged" in r for r in out.trials["stop_reason"])
    summary = summarize(out.trials)
    assert (summary["n_ok"] == 0).all() and summary["median"].isna().all()
