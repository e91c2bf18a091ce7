"""The Python API (hjbench.run / load / Run): docs/api.md's example runs as written, then the contract."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import hjbench
from hjbench.errors import ConfigError, RunError

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"
TINY = {"name": "tiny", "methods": ["maxplus"], "priors": ["l1"], "dims": [2], "n_samples": [32],
        "repetitions": 2, "n_test": 64, "n_cross": 11, "device": "cpu"}


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """Run docs/api.md's python block in a fresh folder holding a link to the committed reference."""
    block = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(block) == 1, "docs/api.md should hold exactly one python example"
    cwd = tmp_path_factory.mktemp("api")
    (cwd / "results").mkdir()
    (cwd / "results" / "reference").symlink_to(ROOT / "results" / "reference")
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", block[0]], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=400)
    assert out.returncode == 0, out.stderr[-3000:]
    return cwd, out.stdout


def test_docs_example_runs_as_written(example):
    cwd, stdout = example
    run_dir = cwd / "results" / "api-example"
    for name in ("run.json", "trials.jsonl", "trials.parquet", "summary.parquet", "bound_report.md",
                 "report/index.html", "report/api-example.html"):
        assert (run_dir / name).is_file(), name
    assert "'ok': 8" in stdout and "guarantee holds" in stdout
    assert "# Comparison: B = api-example" in stdout or "schema_version=1" in stdout  # compared, or refused
    page = (run_dir / "report" / "api-example.html").read_text(encoding="utf-8")
    assert stdout.strip().splitlines()[-1] == "results/api-example/report/api-example.html"
    assert "data:image/png;base64," in page and "https://" not in page and "http://" not in page


def test_load_reopens_the_run(example, monkeypatch):
    cwd, _ = example
    monkeypatch.chdir(cwd)
    run = hjbench.load("api-example")  # a run id under results/
    assert run.path == Path("results/api-example") and repr(run) == "hjbench.Run('results/api-example')"
    assert run.info["run_id"] == "api-example" and run.outcome is None
    trials = run.trials
    assert len(trials) == 8 and set(trials["method"]) == {"hj", "maxplus"} and (trials["status"] == "ok").all()
    assert run.summary is run.summary  # cached while the trials are unchanged
    assert {"error_vs_n_forward_rel_mse.png", "bound_ratio.png"} <= {p.name for p in run.figures}
    assert all(p.is_file() for p in run.figures)


def test_the_same_call_resumes_and_runs_nothing(example, monkeypatch):
    cwd, _ = example
    monkeypatch.chdir(cwd)
    run = hjbench.run("smoke", methods="hj,maxplus", priors="l1", repetitions=2, out="results/api-example", jobs=0)
    assert run.outcome.n_total == run.outcome.n_resumed == 8 and run.outcome.exit_code == 0
    with pytest.raises(RunError, match="holds a run of another configuration"):
        hjbench.run("smoke", methods="maxplus", priors="l1", out="results/api-example", jobs=0)


def test_a_dict_config_runs_and_summary_follows_new_rows(tmp_path):
    run = hjbench.run(TINY, out=tmp_path / "tiny", jobs=0, seed=3)
    assert run.outcome.counts["ok"] == 2 and run.info["config"]["seed"] == 3
    assert run.info["command"].startswith("hjbench.run(<dict>, seed=3)")
    first = run.summary
    assert set(first["n_samples"]) == {32}
    again = hjbench.run({**TINY, "n_samples": [32, 64]}, out=tmp_path / "tiny2", jobs=0)
    assert set(again.summary["n_samples"]) == {32, 64} and (tmp_path / "tiny2" / "summary.parquet").is_file()


def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "never"
    cases = [(dict(jobs=-1), r"jobs=-1 is out of range"),
             (dict(widths=3), r"widths=3 is not a grid override; allowed: methods"),
             (dict(dims="0"), r"dims"),
             (dict(methods="nope"), r"nope")]
    for kw, pattern in cases:
        with pytest.raises(ConfigError, match=pattern) as info:
            hjbench.run(TINY, out=out, **kw)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"config_or_path='no-such-grid' is neither a file nor a config name; "
                                          r"allowed: .*smoke"):
        hjbench.run("no-such-grid", out=out)
    with pytest.raises(ConfigError, match="config_or_path is a int"):
        hjbench.run(3, out=out)
    assert not out.exists()
    with pytest.raises(RunError, match=r"is not a run folder"):
        hjbench.load(tmp_path)


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-1500:]
    return out.stdout.strip()


def test_hjbench_run_is_the_function_and_the_package():
    code = ("import sys, hjbench; f = hjbench.run; assert callable(f); import hjbench.run.runner; "
            "assert callable(hjbench.run) and hjbench.run is f and hjbench.run.runner.run_grid; hjbench.load; "
            "print(sorted(n for n in ('run', 'load', 'load_model', 'Run') if n in hjbench.__all__), "
            "[m for m in ('torch', 'pandas', 'matplotlib', 'jax') if m in sys.modules])")
    assert _python(code) == "['Run', 'load', 'load_model', 'run'] []"  # and the API costs no heavy import


def test_hjbench_run_is_callable_when_the_package_was_imported_first():
    assert _python("import hjbench.run.config, hjbench; print(callable(hjbench.run))") == "True"
