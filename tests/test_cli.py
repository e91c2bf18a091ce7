"""The ``hjbench`` command line: help, list, dry-run, run + summarize, delegation, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hjbench.cli import app

ROOT = Path(__file__).resolve().parent.parent
GRID = """
name = "cli"
repetitions = 2
dims = [2]
n_samples = [16, 48]
n_test = 32
n_cross = 11
device = "cpu"
methods = ["hj"]
priors = ["l1"]

[budget]
steps = 5
width = 8
depth = 1
"""


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny real run (hj on two priors, two N, two repetitions) shared by the tests below."""
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "grid.toml").write_text(GRID)
    result = CliRunner().invoke(app, ["run", "--config", str(tmp / "grid.toml"), "--out", str(tmp / "run"),
                                      "--no-progress"])
    return tmp / "run", result


def test_python_m_hjbench_help_documents_exit_codes():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "hjbench", "--help"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for word in ("run", "list", "summarize", "check-bound", "report", "sys-info", "Exit codes", "130"):
        assert word in proc.stdout


def test_run_help_lists_the_overrides(cli):
    result = cli("run", "--help")
    assert result.exit_code == 0
    for opt in ("--config", "--methods", "--priors", "--dims", "--n-samples", "--repetitions", "--seed",
                "--device", "--dtype", "--steps", "--out", "--fresh", "--dry-run"):
        assert opt in result.stdout


def test_list_methods_shows_regimes_and_outputs(cli):
    result = cli("list", "methods")
    assert result.exit_code == 0
    for text in ("hj", "hj_sobolev", "values", "values_and_gradients", "potential, prior, prox", "hjbench"):
        assert text in result.stdout
    assert "priors" not in result.stdout


def test_list_priors_shows_parameters_with_defaults(cli):
    result = cli("list", "priors")
    assert result.exit_code == 0
    for text in ("l1", "neg_l1", "concave_quadratic", "minplus", "scale=1.0", "smooth", "lipschitz"):
        assert text in result.stdout
    assert cli("list").exit_code == 0
    bad = cli("list", "widgets")
    assert bad.exit_code == 2 and bad.stderr.startswith("error: WHAT='widgets'")


def test_dry_run_prints_the_grid_and_writes_nothing(cli, tmp_path, finished_run):
    (tmp_path / "grid.toml").write_text(GRID)
    out = tmp_path / "results" / "x"
    result = cli("run", "--config", tmp_path / "grid.toml", "--out", out, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "4 in total, 0 would be resumed, 4 would run" in result.stdout
    assert not out.exists() and not (tmp_path / "results").exists()
    run_dir, _ = finished_run
    before = sorted(p.name for p in run_dir.iterdir())
    again = cli("run", "--config", tmp_path / "grid.toml", "--out", run_dir, "--dry-run", "--n-samples", "16,48")
    assert "4 would be resumed, 0 would run" in again.stdout
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_run_writes_results_summary_and_figure(finished_run):
    run_dir, result = finished_run
    assert result.exit_code == 0, result.output
    for name in ("run.json", "trials.jsonl", "trials.parquet", "summary.parquet"):
        assert (run_dir / name).exists(), name
    assert f"results: {run_dir}" in result.stdout and "4 ok" in result.stdout
    assert "figure:" in result.stdout and list((run_dir / "figures").iterdir())  # hjbench.present.plots.error_vs_n
    trials = pd.read_parquet(run_dir / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"ok"}


def test_summarize_prints_medians_with_cis(cli, finished_run):
    run_dir, _ = finished_run
    (run_dir / "summary.parquet").unlink()
    result = cli("summarize", run_dir, "--metric", "forward_rel_mse")
    assert result.exit_code == 0, result.output
    assert "forward_rel_mse" in result.stdout and " [" in result.stdout and "2/2" in result.stdout
    summary = pd.read_parquet(run_dir / "summary.parquet")
    fwd = summary[summary["metric"] == "forward_rel_mse"]
    assert len(fwd) == 2 and (fwd["n_finite"] == 2).all()
    assert (fwd["ci_low"] <= fwd["median"]).all() and (fwd["median"] <= fwd["ci_high"]).all()
    bad = cli("summarize", run_dir, "--metric", "accuracy")
    assert bad.exit_code == 2 and "unknown metric" in bad.stderr


def test_a_failing_method_gives_exit_code_1(cli, tmp_path):
    import hjbench.methods as methods
    from hjbench.methods.base import AbstractMethod

    class _Broken(AbstractMethod):
        provides = frozenset({"prox"})

        def __init__(self):
            pass

        def _fit(self, data, generator):
            raise ValueError("diverged")

    name = "_test_cli_broken"
    methods.register(name, _Broken)
    try:
        (tmp_path / "grid.toml").write_text(GRID.replace('methods = ["hj"]', f'methods = ["{name}", "hj"]'))
        result = cli("run", "--config", tmp_path / "grid.toml", "--out", tmp_path / "run", "--repetitions", "1",
                     "--no-progress", "--no-figure", "--jobs", "0")  # inline: _Broken lives in this process
    finally:
        methods.METHODS._entries.pop(name)
    assert result.exit_code == 1, result.output
    assert result.stdout.count("failed: _test_cli_broken l1") == 2 and "ValueError: diverged" in result.stdout
    trials = pd.read_parquet(tmp_path / "run" / "trials.parquet")
    assert sorted(trials["status"]) == ["failed", "failed", "ok", "ok"]


def test_report_delegates_with_progress_and_its_exit_code(cli, finished_run, monkeypatch):
    run_dir, _ = finished_run
    seen = []
    monkeypatch.setitem(sys.modules, "hjbench.present.report", types.SimpleNamespace(
        main=lambda run, **opts: seen.append((run, callable(opts.get("progress")), opts["dpi"])) or 0))
    assert cli("report", run_dir, "--dpi", "150").exit_code == 0
    assert seen == [(run_dir, True, 150)]
    missing = cli("report", run_dir.parent / "nope")
    assert missing.exit_code == 2 and missing.stderr.startswith("error: RUN=")


def test_check_bound_prints_a_short_verdict_the_tables_only_when_verbose(cli, finished_run):
    run_dir, _ = finished_run
    short = cli("check-bound", run_dir)
    assert short.exit_code in (0, 3, 4), short.output  # 3: a learned method above the bound
    lines = short.stdout.strip().splitlines()
    assert 2 <= len(lines) <= 10 and lines[-1].startswith(f"report: {run_dir / 'bound_report.md'}")
    assert "## Cells" not in short.stdout and (run_dir / "bound_report.md").exists()
    full = cli("check-bound", run_dir, "--verbose")
    assert full.exit_code == short.exit_code and "## Cells" in full.stdout
    data = json.loads(cli("check-bound", run_dir, "--json").stdout)
    assert data["exit_code"] == short.exit_code and data["n_cells"] == len(data["cells"]) == 2
    assert data["report"] == str(run_dir / "bound_report.md") and data["verdict"] in short.stdout


def test_json_outputs_parse(cli, finished_run):
    run_dir, _ = finished_run
    listed = json.loads(cli("list", "--json").stdout)
    assert {m["name"] for m in listed["methods"]} >= {"hj", "maxplus"}
    assert {"scale"} <= set(next(p for p in listed["priors"] if p["name"] == "l1")["parameters"])
    summary = json.loads(cli("summarize", run_dir, "--json", "-m", "forward_rel_mse").stdout)
    assert {r["metric"] for r in summary["rows"]} == {"forward_rel_mse"} and len(summary["rows"]) == 2
    assert all(r["ci_low"] <= r["median"] <= r["ci_high"] for r in summary["rows"])
    info = json.loads(cli("sys-info", "--json").stdout)
    assert {"python", "torch", "git_commit"} <= set(info)


COMMANDS = {"run": (0, 1, 2, 130, 143), "list": (0, 2), "summarize": (0, 2), "check-bound": (0, 2, 3, 4),
            "report": (0, 2), "sys-info": (0,)}


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_command_has_h_version_and_its_exit_codes(cli, command):
    from hjbench import __version__

    head = [command] if command else []
    short, long = cli(*head, "-h"), cli(*head, "--help")
    assert short.exit_code == long.exit_code == 0 and short.stdout == long.stdout
    text = " ".join(short.stdout.split())
    codes = COMMANDS.get(command, (0, 1, 2, 3, 4, 130, 143))
    assert "Exit codes:" in text and all(f" {c} " in text.split("Exit codes:")[1] + " " for c in codes)
    version = cli(*head, "--version")
    assert version.exit_code == 0 and version.stdout.strip() == f"hjbench {__version__}"


def test_help_shows_readable_metavars(cli):
    text = cli("run", "-h").stdout
    for meta in ("--config PATH", "--methods LIST", "--repetitions N", "--timeout SECONDS", "--jobs N",
                 "--scheduler ADDRESS", "--out PATH"):
        assert meta in text, meta
    assert "RUN" in cli("report", "-h").stdout and "--dpi N" in cli("report", "-h").stdout


def test_importing_the_cli_does_not_import_torch():
    code = "import hjbench.cli, sys; assert 'torch' not in sys.modules and 'pandas' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_sys_info(cli):
    result = cli("sys-info")
    assert result.exit_code == 0
    for key in ("python", "torch", "jax", "numpy", "cpu_model", "torch_threads", "git"):
        assert key in result.stdout
