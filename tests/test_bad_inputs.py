"""Every bad input is answered in one line: a battery over every command, option and config key.

Each case is data: a command line, files prepared in a fresh folder, and a word the one error
line must contain. The battery checks, for every case: exit code 2, exactly one line on stderr
starting ``error:``, no traceback, and not one file created, changed or removed (the tree is
snapshotted before and after). Config-key cases are generated from the schema table
(:mod:`hjbench.run.schema`): a wrong type and out-of-range values of every key. Most cases run
in-process with typer's CliRunner; a few run ``python -m hjbench`` end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hjbench.cli import app
from hjbench.run.schema import BUDGET_KEYS, KEYS

ROOT = Path(__file__).resolve().parent.parent
TOP = """name = "bad"
repetitions = 1
dims = [2]
n_samples = [16, 32]
n_test = 16
n_cross = 5
device = "cpu"
methods = ["maxplus"]
priors = ["l1"]
"""
BUDGET = "\n[budget]\nsteps = 5\nwidth = 8\ndepth = 1\n"


def grid(**top: str) -> str:
    """TOP with keys replaced or added (TOML literals; None removes the key), then [budget]."""
    lines = [ln for ln in TOP.splitlines() if ln.split(" = ")[0] not in top]
    extra = [f"{k} = {v}" for k, v in top.items() if v is not None and k != "budget_text"]
    return "\n".join(lines + extra) + "\n" + top.get("budget_text", BUDGET)


def budget(**keys: str) -> str:
    table = {"steps": "5", "width": "8", "depth": "1", **keys}
    return grid(budget_text="\n[budget]\n" + "".join(f"{k} = {v}\n" for k, v in table.items()))


def _bad_values(key) -> list[tuple[str, str]]:
    """(TOML literal, label) of a wrong type and the out-of-range values of a schema row."""
    if key.choices:
        return [('"nope"', "unknown choice"), ("1", "wrong type")] if key.kind != "list" else \
            [('["nope"]', "unknown choice"), ('"torch"', "wrong type")]
    wrap = (lambda v: f"[{v}]") if key.kind == "list" else (lambda v: v)
    out = [(wrap('"x"'), "wrong type")]
    if key.kind in ("int", "list"):
        out.append((wrap("2.5"), "float for an integer"))
    if key.low is not None:
        low = key.low if key.low_open else key.low - (1 if key.kind in ("int", "list") else 0.5)
        out.append((wrap(repr(low)), "below the range"))
    if key.high is not None:
        out.append((wrap(str(int(key.high) + 1) if key.kind in ("int", "list") else repr(key.high * 10)),
                    "above the range"))
    return out


def _schema_cases() -> list:
    cases = []
    for key in KEYS:
        if key.kind in ("list", "int", "number", "choice") and key.name not in ("methods", "priors"):
            for value, label in _bad_values(key):
                cases.append((f"config {key.name}: {label}", ["run", "--config", "g.toml"],
                              {"g.toml": grid(**{key.name: value})}, key.name))
    for key in BUDGET_KEYS:
        for value, label in _bad_values(key):
            cases.append((f"config budget.{key.name}: {label}", ["run", "--config", "g.toml"],
                          {"g.toml": budget(**{key.name: value})}, f"budget.{key.name}"))
    return cases


RUN = ["run", "--config", "g.toml"]
G = {"g.toml": grid()}
CONFIG_CASES = [
    ("n_samples = 1e9", RUN, {"g.toml": grid(n_samples="[1e9]")}, "n_samples[0]"),
    ("repetitions = 1e9", RUN, {"g.toml": grid(repetitions="1e9")}, "repetitions"),
    ("budget.width = 1e9", RUN, {"g.toml": budget(width="1e9")}, "budget.width"),
    ("threads = 100000", RUN, {"g.toml": grid(threads="100000")}, "threads"),
    ("n_test = 1e12", RUN, {"g.toml": grid(n_test="1e12")}, "n_test"),
    ("n_test = 10**12 as an integer", RUN, {"g.toml": grid(n_test="1000000000000")}, "n_test"),
    ("memory: 10^7 samples in dim 4096", RUN, {"g.toml": grid(dims="[4096]", n_samples="[10000000]")}, "MiB"),
    ("memory: width 65536", RUN, {"g.toml": grid(methods='["hj"]', budget_text=BUDGET.replace("width = 8",
                                                                                           "width = 65536"))}, "MiB"),
    ("grid of 10^8 trials", RUN, {"g.toml": grid(repetitions="1000", dims=str(list(range(1, 101))),
                                                 n_samples=str(list(range(1, 1001))))}, "trials"),
    ("unknown top-level key", RUN, {"g.toml": grid(repetitons="2")}, "repetitons"),
    ("unknown budget key", RUN, {"g.toml": budget(stepz="5")}, "budget.stepz"),
    ("unknown method parameter", RUN, {"g.toml": grid() + "[method_params.maxplus]\nfoo = 1\n"}, "foo"),
    ("unknown prior parameter", RUN, {"g.toml": grid() + "[prior_params.l1]\nfoo = 1\n"}, "foo"),
    ("method_params of an unknown method", RUN, {"g.toml": grid() + "[method_params.nope]\ntol = 1\n"}, "nope"),
    ("method budget override too large", RUN, {"g.toml": grid(methods='["hj"]') + "[method_params.hj]\n"
                                               "width = 100000\n"}, "width"),
    ("unknown method", RUN, {"g.toml": grid(methods='["maxplus", "nope"]')}, "methods[1].name"),
    ("unknown prior", RUN, {"g.toml": grid(priors='["l2"]')}, "priors[0].name"),
    ("method listed twice", RUN, {"g.toml": grid(methods='["maxplus", "maxplus"]')}, "listed twice"),
    ("methods not a list", RUN, {"g.toml": grid(methods="3")}, "methods"),
    ("priors not a list", RUN, {"g.toml": grid(priors="3")}, "priors"),
    ("missing dims", RUN, {"g.toml": grid(dims=None)}, "dims"),
    ("missing methods", RUN, {"g.toml": grid(methods=None)}, "methods"),
    ("dims listed twice", RUN, {"g.toml": grid(dims="[2, 2]")}, "dims"),
    ("empty dims", RUN, {"g.toml": grid(dims="[]")}, "dims"),
    ("n_samples_by_dim bad key", RUN, {"g.toml": grid(n_samples_by_dim='{x = [4]}')}, "n_samples_by_dim"),
    ("n_samples_by_dim not a table", RUN, {"g.toml": grid(n_samples_by_dim="3")}, "n_samples_by_dim"),
    ("name with spaces", RUN, {"g.toml": grid(name='"a b"')}, "name"),
    ("name not a string", RUN, {"g.toml": grid(name="3")}, "name"),
    ("description not a string", RUN, {"g.toml": grid(description="3")}, "description"),
    ("budget not a table", RUN, {"g.toml": grid(budget="3", budget_text="")}, "budget"),
    ("method_params not a table", RUN, {"g.toml": grid(method_params="3")}, "method_params"),
    ("backends empty", RUN, {"g.toml": grid(backends="[]")}, "backends"),
    ("patience without validation split", RUN, {"g.toml": budget(patience="3")}, "patience"),
    ("regime cannot serve the method", RUN, {"g.toml": grid(methods='["lpn"]', regime='"values"')}, "regime"),
    ("config not UTF-8", RUN, {"g.toml": b"dims = [2]\n\xff\xfe\n"}, "UTF-8"),
    ("config is a directory", ["run", "--config", "adir"], {"adir/x": "1"}, "adir"),
    ("config missing", ["run", "--config", "missing.toml"], {}, "missing.toml"),
    ("config malformed TOML", RUN, {"g.toml": "dims = [2\n"}, "line"),
    ("config empty", RUN, {"g.toml": ""}, "dims"),
    ("config binary garbage", RUN, {"g.toml": os.urandom(64).replace(b"\n", b"") + b"\x80"}, "g.toml"),
]
OPTION_CASES = [
    ("--repetitions abc", RUN + ["--repetitions", "abc"], G, "--repetitions"),
    ("--repetitions 0", RUN + ["--repetitions", "0"], G, "repetitions"),
    ("--repetitions 1e9", RUN + ["--repetitions", "1e9"], G, "--repetitions"),
    ("--repetitions 1000000000", RUN + ["--repetitions", "1000000000"], G, "repetitions"),
    ("--repetitions without value", RUN + ["--repetitions"], G, "--repetitions"),
    ("--seed -1", RUN + ["--seed", "-1"], G, "seed"),
    ("--seed abc", RUN + ["--seed", "abc"], G, "--seed"),
    ("--dims 0", RUN + ["--dims", "0"], G, "dims"),
    ("--dims x", RUN + ["--dims", "x"], G, "--dims"),
    ("--dims 99999", RUN + ["--dims", "99999"], G, "dims"),
    ("--n-samples 0", RUN + ["--n-samples", "0"], G, "n_samples"),
    ("--n-samples 1e9", RUN + ["--n-samples", "1e9"], G, "--n-samples"),
    ("--methods nope", RUN + ["--methods", "nope"], G, "nope"),
    ("--methods empty", RUN + ["--methods", ","], G, "--methods"),
    ("--priors nope", RUN + ["--priors", "nope"], G, "nope"),
    ("--device tpu", RUN + ["--device", "tpu"], G, "device"),
    ("--dtype float16", RUN + ["--dtype", "float16"], G, "dtype"),
    ("--steps 0", RUN + ["--steps", "0"], G, "budget.steps"),
    ("--steps abc", RUN + ["--steps", "abc"], G, "--steps"),
    ("--timeout 0", RUN + ["--timeout", "0"], G, "timeout_s"),
    ("--timeout -5", RUN + ["--timeout", "-5"], G, "timeout_s"),
    ("--timeout abc", RUN + ["--timeout", "abc"], G, "--timeout"),
    ("--threads 0", RUN + ["--threads", "0"], G, "threads"),
    ("--threads 100000", RUN + ["--threads", "100000"], G, "threads"),
    ("--jobs 99999", RUN + ["--jobs", "99999"], G, "--jobs"),
    ("--jobs -1", RUN + ["--jobs", "-1"], G, "--jobs"),
    ("--jobs abc", RUN + ["--jobs", "abc"], G, "--jobs"),
    ("--scheduler not an address", RUN + ["--scheduler", "localhost"], G, "--scheduler"),
    ("--out is a file", RUN + ["--out", "afile"], {**G, "afile": "x"}, "--out"),
    ("--out uncreatable", RUN + ["--out", "/proc/hjbench-nope/run"], G, "--out"),
    ("--out under a file", RUN + ["--out", "afile/run"], {**G, "afile": "x"}, "--out"),
    ("unknown option of run", RUN + ["--frobnicate"], G, "--frobnicate"),
    ("extra argument to run", RUN + ["extra"], G, "extra"),
    ("list widgets", ["list", "widgets"], {}, "WHAT"),
    ("list two arguments", ["list", "methods", "priors"], {}, "priors"),
    ("list unknown option", ["list", "--jsn"], {}, "--jsn"),
    ("summarize without RUN", ["summarize"], {}, "RUN"),
    ("summarize unknown metric", ["summarize", "RUNDIR", "--metric", "accuracy"], "run", "accuracy"),
    ("check-bound unknown option", ["check-bound", "RUNDIR", "--verbos"], "run", "--verbos"),
    ("report --dpi 0", ["report", "RUNDIR", "--dpi", "0"], "run", "--dpi"),
    ("report --dpi 100000", ["report", "RUNDIR", "--dpi", "100000"], "run", "--dpi"),
    ("report --dpi abc", ["report", "RUNDIR", "--dpi", "abc"], "run", "--dpi"),
    ("report --format gif", ["report", "RUNDIR", "--format", "gif"], "run", "--format"),
    ("sys-info extra argument", ["sys-info", "extra"], {}, "extra"),
    ("sys-info unknown option", ["sys-info", "--jsonn"], {}, "--jsonn"),
    ("no such command", ["frobnicate"], {}, "frobnicate"),
    ("unknown app option", ["--versio"], {}, "--versio"),
]


def _rows(folder: Path) -> list[str]:
    return (folder / "trials.jsonl").read_text().splitlines()


def _jsonl(lines) -> str:
    return "".join(line + "\n" for line in lines)


def _corrupt(kind: str, folder: Path) -> None:
    """Damage a copy of a good run folder in one way."""
    rows = _rows(folder)
    first = json.loads(rows[0])
    put = {
        "jsonl random bytes": lambda: (folder / "trials.jsonl").write_bytes(os.urandom(200) + b"\n" + rows[0].encode()
                                                                            + b"\n"),
        "jsonl truncated mid-file": lambda: (folder / "trials.jsonl").write_text(
            _jsonl([rows[0][: len(rows[0]) // 2]] + rows[1:])),
        "jsonl foreign rows": lambda: (folder / "trials.jsonl").write_text(_jsonl(['{"id": 1, "loss": 0.5}'] * 2)),
        "jsonl another schema_version": lambda: (folder / "trials.jsonl").write_text(
            _jsonl([json.dumps({**first, "schema_version": 99})] + rows[1:])),
        "jsonl unexpected fields": lambda: (folder / "trials.jsonl").write_text(
            _jsonl([json.dumps({**first, "surprise": 1})] + rows[1:])),
        "jsonl a list row": lambda: (folder / "trials.jsonl").write_text(_jsonl(["[1, 2]"] + rows)),
        "parquet random bytes": lambda: (folder / "trials.parquet").write_bytes(os.urandom(500)),
        "parquet truncated": lambda: (folder / "trials.parquet").write_bytes(
            (folder / "trials.parquet").read_bytes()[:300]),
        "parquet of another table": lambda: __import__("pandas").DataFrame({"a": [1, 2], "b": ["x", "y"]}).to_parquet(
            folder / "trials.parquet"),
        "run.json not JSON": lambda: (folder / "run.json").write_text("{not json"),
        "run.json a list": lambda: (folder / "run.json").write_text("[1, 2, 3]"),
        "run.json another schema_version": lambda: (folder / "run.json").write_text(
            json.dumps({**json.loads((folder / "run.json").read_text()), "schema_version": 99})),
        "run.json not UTF-8": lambda: (folder / "run.json").write_bytes(b"\xff\xfe{}"),
    }
    if kind.startswith("parquet"):
        (folder / "trials.jsonl").unlink()
    put[kind]()


CORRUPTIONS = ["jsonl random bytes", "jsonl truncated mid-file", "jsonl foreign rows", "jsonl another schema_version",
               "jsonl unexpected fields", "jsonl a list row", "parquet random bytes", "parquet truncated",
               "parquet of another table", "run.json not JSON", "run.json a list", "run.json another schema_version",
               "run.json not UTF-8"]
RUN_CASES = [(f"{cmd} on {kind}", [cmd, "RUNDIR"], ("run", kind), "RUNDIR")
             for kind in CORRUPTIONS for cmd in ("summarize", "check-bound", "report")]
RUN_CASES += [(f"{cmd} on {what}", [cmd, arg], files, "RUN")
              for cmd in ("summarize", "check-bound", "report")
              for what, arg, files in (("a missing folder", "nope", {}), ("an empty folder", "empty", {"empty/.keep": ""}),
                                       ("a file", "afile", {"afile": "x"}))]
CASES = _schema_cases() + CONFIG_CASES + OPTION_CASES + RUN_CASES


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """A small finished run (max-plus, inline) that the run-folder cases copy and damage."""
    tmp = tmp_path_factory.mktemp("good")
    (tmp / "g.toml").write_text(grid())
    result = CliRunner().invoke(app, ["run", "--config", str(tmp / "g.toml"), "--out", str(tmp / "run"),
                                      "--jobs", "0", "--no-progress", "--no-figure"])
    assert result.exit_code == 0, result.output
    return tmp / "run"


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.is_dir(), None if p.is_dir() else (p.stat().st_size, p.stat().st_mtime_ns))
            for p in sorted(root.rglob("*"))}


def _prepare(tmp_path: Path, files, good_run: Path) -> None:
    if isinstance(files, tuple) or files == "run":
        shutil.copytree(good_run, tmp_path / "RUNDIR")
        if isinstance(files, tuple):
            _corrupt(files[1], tmp_path / "RUNDIR")
        return
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        data = text if isinstance(text, bytes) else text.encode()
        (tmp_path / name).write_bytes(data)


def test_the_battery_has_at_least_100_cases_over_every_command_and_key():
    assert len(CASES) >= 100 and len({c[0] for c in CASES}) == len(CASES)
    commands = {c[1][0] for c in CASES}
    assert {"run", "list", "summarize", "check-bound", "report", "sys-info"} <= commands
    named = " ".join(c[0] for c in CASES)
    assert all(f"config {k.name}" in named for k in KEYS if k.kind in ("int", "number", "choice"))
    assert all(f"config budget.{k.name}" in named for k in BUDGET_KEYS)


@pytest.mark.parametrize("name, argv, files, word", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(name, argv, files, word, tmp_path, monkeypatch, good_run):
    _prepare(tmp_path, files, good_run)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(app, argv)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = result.stderr.splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and word in lines[0], lines[0]
    assert _snapshot(tmp_path) == before


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_out_is_refused(tmp_path, monkeypatch):
    (tmp_path / "g.toml").write_text(grid())
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    result = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "g.toml"), "--out", str(tmp_path / "ro/run")])
    (tmp_path / "ro").chmod(0o755)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "--out" in result.stderr
    assert not (tmp_path / "ro" / "run").exists()


E2E = [(["run", "--config", "g.toml", "--repetitions", "abc"], {"g.toml": grid()}, "--repetitions"),
       (["run", "--config", "g.toml"], {"g.toml": b"\xff\xfe"}, "UTF-8"),
       (["run", "--config", "g.toml"], {"g.toml": grid(n_test="1e12")}, "n_test"),
       (["check-bound", "RUNDIR"], ("run", "run.json not JSON"), "run.json"),
       (["report", "RUNDIR"], ("run", "parquet truncated"), "trials.parquet")]


@pytest.mark.parametrize("argv, files, word", E2E, ids=[" ".join(a) for a, _, _ in E2E])
def test_bad_input_end_to_end_in_a_real_process(argv, files, word, tmp_path, good_run):
    _prepare(tmp_path, files, good_run)
    before = _snapshot(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "hjbench", *argv], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and word in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and _snapshot(tmp_path) == before


def test_a_plug_in_that_fails_to_import_is_one_warning_line(tmp_path):
    (tmp_path / "broken_plugin.py").write_text("raise ImportError('no module named xyz\\nsecond line')\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}", "HJBENCH_PLUGINS": "broken_plugin",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "hjbench", "list"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [proc.stderr.strip()] and proc.stderr.startswith(
        "warning: plug-in 'broken_plugin' (HJBENCH_PLUGINS) failed to import: ImportError: no module named xyz")
    assert "maxplus" in proc.stdout
