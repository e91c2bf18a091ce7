"""Grid configuration: every bad configuration stops before anything runs (issue 3).

Each bad case goes through the real CLI (in-process, plus one real subprocess): exit code 2, one
line ``error: config: ...`` naming the key, the value and what is allowed, no traceback, and no
results folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hjbench.cli import app
from hjbench.run.config import apply_overrides
from hjbench.run.config import load_config
from hjbench.run.config import validate
from hjbench.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BASE = """
name = "t"
seed = 0
repetitions = 1
dims = [2]
n_samples = [16, 32]
n_test = 32
methods = ["hj"]
priors = ["l1"]

[budget]
steps = 5
width = 8
depth = 1
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def _replace(key: str, value: str) -> str:
    lines = [f"{key} = {value}" if line.startswith(f"{key} =") else line for line in BASE.splitlines()]
    return "\n".join(lines) + "\n"


BAD = {
    "unknown method": (_replace("methods", '["hj", "no_such_method"]'), "methods[1].name='no_such_method'"),
    "unknown prior": (_replace("priors", '["l2_typo"]'), "priors[0].name='l2_typo'"),
    "zero dim": (_replace("dims", "[0]"), "dims[0]=0"),
    "negative dim": (_replace("dims", "[2, -3]"), "dims[1]=-3"),
    "zero n_samples": (_replace("n_samples", "[0]"), "n_samples[0]=0"),
    "negative n_samples": (_replace("n_samples", "[-10]"), "n_samples[0]=-10"),
    "zero repetitions": (_replace("repetitions", "0"), "repetitions=0"),
    "unknown top-level key": (BASE.replace('name = "t"', 'name = "t"\nrepetition = 3'), "repetition=3"),
    "unknown budget key": (BASE + "stepz = 10\n", "budget.stepz=10"),
    "wrong type dims": (_replace("dims", '"2"'), "dims='2'"),
    "wrong type repetitions": (_replace("repetitions", "1.5"), "repetitions=1.5"),
    "wrong type t": (BASE.replace("seed = 0", 'seed = 0\nt = "one"'), "t='one'"),
    "malformed toml": (BASE.replace("seed = 0", "seed = = 0"), "malformed TOML at line 3"),
    "unknown device": (BASE.replace("seed = 0", 'seed = 0\ndevice = "tpu"'), "device='tpu'"),
    "unknown dtype": (BASE.replace("seed = 0", 'seed = 0\ndtype = "float16"'), "dtype='float16'"),
    "bad method param": (BASE.replace('methods = ["hj"]', '') + '\n[[methods]]\nname = "hj"\n'
                         '[methods.params]\nbeta = -1.0\n', "methods[0].params (hj)"),
    "unknown method param": (BASE.replace('methods = ["hj"]', '') + '\n[[methods]]\nname = "hj"\n'
                             '[methods.params]\nbetta = 5.0\n', "methods[0].params.betta=5.0"),
    "bad prior param": (BASE.replace('priors = ["l1"]', '') + '\n[[priors]]\nname = "concave_quadratic"\n'
                        '[priors.params]\nc = 2.0\n', "priors[0].params"),
    "regime cannot serve method": (BASE.replace("seed = 0", 'seed = 0\nregime = "values"')
                                   .replace('["hj"]', '["hj_sobolev"]'), "regime='values'"),
    "missing methods": (BASE.replace('methods = ["hj"]', ""), "methods=None"),
}


def _check_one_line_error(result, out: Path, expected: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: config:"), lines[0]
    assert expected in lines[0]
    assert "allowed" in lines[0] or " must " in lines[0]  # constructor rules say what is allowed
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_exits_2_with_one_line_and_writes_nothing(tmp_path, case):
    text, expected = BAD[case]
    out = tmp_path / "results" / "run"
    result = CliRunner().invoke(app, ["run", "--config", str(_write(tmp_path, text)), "--out", str(out)])
    _check_one_line_error(result, out, expected)


@pytest.mark.parametrize("args, expected", [
    (["--methods", "hj,nope"], "methods[1].name='nope'"),
    (["--priors", "l1,l3"], "priors[1].name='l3'"),
    (["--dims", "2,x"], "--dims='2,x'"),
    (["--dims", "0"], "dims[0]=0"),
    (["--n-samples", "-5"], "n_samples[0]=-5"),
    (["--repetitions", "0"], "repetitions=0"),
    (["--device", "gpu"], "device='gpu'"),
    (["--dtype", "half"], "dtype='half'"),
    (["--steps", "0"], "config: budget.steps=0: is out of range"),
    (["--threads", "0"], "threads=0"),
])
def test_bad_overrides_exit_2(tmp_path, args, expected):
    out = tmp_path / "results" / "run"
    result = CliRunner().invoke(app, ["run", "--config", str(_write(tmp_path, BASE)), "--out", str(out), *args])
    _check_one_line_error(result, out, expected)


def test_cuda_requested_without_cuda_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "results" / "run"
    result = CliRunner().invoke(app, ["run", "--config", str(_write(tmp_path, BASE)), "--out", str(out),
                                      "--device", "cuda"])
    _check_one_line_error(result, out, "device='cuda'")


def test_missing_config_file_exits_2(tmp_path):
    out = tmp_path / "results" / "run"
    result = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "nope.toml"), "--out", str(out)])
    _check_one_line_error(result, out, "--config=")


def test_bad_config_in_a_real_process_prints_no_traceback(tmp_path):
    cfg = _write(tmp_path, BAD["unknown method"][0])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "hjbench", "run", "--config", str(cfg), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no_such_method" in errors[0] and "allowed" in errors[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "results").exists()


def test_method_params_table_merges_and_checks_names(tmp_path):
    text = BASE.replace('methods = ["hj"]', 'methods = ["hj", "hj_sobolev"]') + "\n[method_params.hj]\nbeta = 3.0\n"
    cfg = load_config(_write(tmp_path, text))
    assert cfg.methods[0].resolved["beta"] == 3.0 and cfg.methods[1].resolved["beta"] == 5.0
    assert load_config(_write(tmp_path, text), {"methods": "hj_sobolev"}).methods[0].name == "hj_sobolev"
    with pytest.raises(ConfigError, match="method_params.hjj={'beta': 3.0}: unknown method"):
        load_config(_write(tmp_path, text.replace("[method_params.hj]", "[method_params.hjj]")))


def test_valid_config_resolves_budget_params_and_overrides(tmp_path):
    text = BASE.replace('methods = ["hj"]', "").replace("[budget]", 'n_samples_by_dim = {"4" = [50]}\n[budget]')
    text += '\n[[methods]]\nname = "hj"\n[methods.params]\nsteps = 7\nbatch_size = "none"\n'
    cfg = load_config(_write(tmp_path, text), {"dims": "2,4", "repetitions": 2, "dtype": "float64"})
    assert cfg.dims == (2, 4) and cfg.repetitions == 2 and cfg.dtype == "float64"
    assert cfg.n_samples == {2: (16, 32), 4: (50,)}
    (hj,) = cfg.methods
    budget = hj.params["budget"]
    assert budget["steps"] == 7 and budget["width"] == 8  # method params override the common budget
    assert budget["batch_size"] is None and hj.resolved["budget"].steps == 7
    assert cfg.device in ("cpu", "cuda") and cfg.device_requested == "auto"
    assert cfg.n_trials == 2 * (2 + 1)


def test_budget_goes_only_to_methods_that_take_it(tmp_path):
    import hjbench.methods as methods

    class _NoBudget(methods.AbstractMethod):
        provides = frozenset({"prox"})

        def __init__(self, *, shift: float = 0.0):
            self.shift = shift

    name = "_test_config_nobudget"
    methods.register(name, _NoBudget)
    try:
        cfg = load_config(_write(tmp_path, _replace("methods", f'["hj", "{name}"]')))
        assert cfg.methods[1].params == {} and cfg.methods[0].params["budget"]["steps"] == 5
    finally:
        methods.METHODS._entries.pop(name)


def test_overrides_keep_config_params_and_all_expands():
    raw = {"methods": [{"name": "hj", "params": {"beta": 3.0}}, "hj_sobolev"]}
    assert apply_overrides(raw, {"methods": "hj"})["methods"] == [{"name": "hj", "params": {"beta": 3.0}}]
    assert apply_overrides(raw, {"methods": "all"})["methods"] == "all"
    assert apply_overrides({"n_samples_by_dim": {"2": [5]}}, {"n_samples": "10,20"}) == {"n_samples": [10, 20]}
    with pytest.raises(ConfigError, match="unknown override"):
        apply_overrides({}, {"bogus": 1})


def test_all_shipped_configs_validate():
    import hjbench.methods as methods
    import hjbench.priors as priors

    for name in ("smoke", "default"):
        cfg = load_config(ROOT / "configs" / f"{name}.toml")
        assert cfg.name == name and {m.name for m in cfg.methods} <= set(methods.names())
        assert {p.name for p in cfg.priors} == set(priors.names()[:4]) and cfg.repetitions >= 1
    paper = load_config(ROOT / "configs" / "paper.toml", {"device": "cpu"})  # paper.toml asks for cuda
    assert paper.n_samples[2] == (20000,) and paper.n_samples[8] == (30000,) and paper.n_samples[64] == (40000,)
    assert [m.name for m in paper.methods] == ["hj_paper"] and paper.methods[0].resolved["beta"] == 5.0
    assert paper.budget["steps"] == 500000 and paper.budget["batch_size"] is None


def test_validate_error_is_a_config_error_with_one_line():
    with pytest.raises(ConfigError) as info:
        validate({"dims": [2], "n_samples": [10], "methods": ["hj"], "priors": ["l1"], "box": 0})
    assert "\n" not in str(info.value) and str(info.value).startswith("config: box=0")


def test_docs_config_md_is_generated_from_the_schema():
    from hjbench.run.schema import render_markdown

    committed = (ROOT / "docs" / "config.md").read_text()
    assert committed == render_markdown(), "docs/config.md is stale: python -m hjbench.run.schema > docs/config.md"


def test_schema_rows_match_the_code_they_describe():
    import dataclasses

    from hjbench.data import REGIMES
    from hjbench.run.schema import BUDGET_KEYS, KEYS
    from hjbench.training import Budget

    defaults = {f.name: f.default for f in dataclasses.fields(Budget)}
    assert [k.name for k in BUDGET_KEYS] == list(defaults)
    assert all(k.default == defaults[k.name] for k in BUDGET_KEYS)
    assert next(k for k in KEYS if k.name == "regime").choices == tuple(REGIMES)
    cfg = validate({"dims": [2], "n_samples": [8], "methods": ["maxplus"], "priors": ["l1"], "device": "cpu"})
    for key in KEYS:  # every scalar default of the table is the default the validator applies
        if key.kind in ("int", "number", "choice") and key.name != "device":
            assert getattr(cfg, key.name) == key.default, key.name


def test_memory_estimate_grows_with_every_size_and_refuses_what_cannot_fit():
    from hjbench.run.sizing import machine_mb, trial_bytes

    base = dict(dim=4, n_samples=1000, n_test=500, n_cross=51, dtype="float32")
    net = {"budget": {"width": 32, "depth": 2, "batch_size": None}}
    one = trial_bytes("hj", net, **base)
    for change in ({"dim": 8}, {"n_samples": 2000}, {"n_test": 1000}, {"dtype": "float64"}):
        assert trial_bytes("hj", net, **{**base, **change}) > one, change
    assert trial_bytes("hj", {"budget": {"width": 64, "depth": 2}}, **base) > one
    assert trial_bytes("lpn", net, **base) > trial_bytes("pnp", net, **base)  # the inversion working set
    assert trial_bytes("maxplus", {"chunk_elements": 2**22}, **base) > trial_bytes("maxplus", {"chunk_elements": 2**10},
                                                                                  **base)
    have, source = machine_mb()
    assert have > 0 and source in ("MemTotal", "physical memory", "unknown memory")
