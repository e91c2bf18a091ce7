"""``hjbench compare``: ratios with bootstrap intervals, planted regressions, lost cells, schema refusal."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import _fake_run as fake
from hjbench.errors import ConfigError, RunError
from hjbench.present import compare

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
GRID = dict(methods=("hj", "lista", "maxplus"), priors=("l1",), dims=(2,), n_samples=(100, 300, 1000), repetitions=3)
CELL = ("hj", "l1", 2, 1000)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return fake.make_run(tmp_path_factory.mktemp("compare"), "run-a", **GRID)


def _copy(base: Path, tmp_path: Path, edit=None) -> Path:
    """A copy of ``base`` whose trials.jsonl rows pass through ``edit(row) -> row`` (the source of truth)."""
    out = tmp_path / "run-b"
    shutil.copytree(base, out)
    rows = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    rows = [edit(r) if edit else r for r in rows]
    (out / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "trials.parquet").unlink()
    return out


def _in_cell(row: dict, cell=CELL) -> bool:
    return (row["method"], row["prior"], row["dim"], row["n_samples"]) == cell


def _scale(column: str, factor: float):
    def edit(row):
        if _in_cell(row) and row[column] is not None:
            row[column] *= factor
        return row
    return edit


def test_ratio_interval_known_answers():
    assert compare.ratio_interval(np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 2.0])) == (2.0, 2.0, 2.0)
    ratio, lo, hi = compare.ratio_interval(np.array([1.0, 2.0, 3.0]), np.array([3.0, 6.0, 9.0]), seed=1)
    assert ratio == 3.0 and lo <= 3.0 <= hi and lo >= 1.0 / 3 and hi <= 9.0  # resample medians stay in range
    assert math.isnan(compare.ratio_interval(np.array([1.0]), np.array([1.0, 2.0]))[1])  # one repetition: no interval
    assert math.isnan(compare.ratio_interval(np.array([0.0, 0.0]), np.array([1.0, 2.0]))[0])  # A's median is 0
    same = compare.ratio_interval(np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 4.0]), seed=3)
    assert same == compare.ratio_interval(np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 4.0]), seed=3)  # seeded


def test_identical_runs_exit_0(base, tmp_path):
    c = compare.compare_runs(base, _copy(base, tmp_path))
    assert c.exit_code == 0 and c.regressions.empty and c.lost.empty
    assert set(c.metrics) == {"forward_rel_mse", "prox_rel_mse", "prior_bvs_rel_mse", "fit_seconds",
                              "prox_seconds_per_point", "prior_seconds_per_point", "peak_memory_mb"}
    ok = c.rows[c.rows["status"] == "unchanged"]
    assert len(ok) > 20 and (ok["ratio"] == 1.0).all() and ((ok["ci_low"] <= 1) & (ok["ci_high"] >= 1)).all()
    assert "prior_bvs_rel_mse" not in set(c.rows[c.rows["method"] == "lista"]["metric"])  # not applicable: no row
    assert c.only_in_a == c.only_in_b == 0


def test_planted_regression_is_flagged_with_exit_1(base, tmp_path):
    b = _copy(base, tmp_path, _scale("forward_rel_mse", 3.0))
    c = compare.compare_runs(base, b)
    assert c.exit_code == 1
    flagged = c.regressions
    assert flagged[["method", "prior", "dim", "n_samples", "metric"]].values.tolist() == [[*CELL, "forward_rel_mse"]]
    assert flagged["ratio"].iloc[0] == pytest.approx(3.0) and flagged["ci_low"].iloc[0] > 1.25
    text = c.to_markdown()
    assert "## Regressions (1)" in text and "| hj | l1 | 2 | 1000 | forward_rel_mse |" in text
    assert text.rstrip().endswith("(exit 1)")
    lines = []
    assert compare.main(base, b, out=lines.append) == 1 and "REGRESSION" in lines[0]


def test_json_parses_and_carries_the_regression(base, tmp_path):
    b = _copy(base, tmp_path, _scale("fit_seconds", 4.0))
    out = []
    assert compare.main(base, b, as_json=True, out=out.append) == 1
    doc = json.loads(out[0])
    assert doc["exit_code"] == 1 and doc["threshold"] == 0.25
    assert [(r["method"], r["metric"]) for r in doc["regressions"]] == [("hj", "fit_seconds")]
    assert len(doc["rows"]) == len(compare.compare_runs(base, b).rows)
    assert doc["a"]["commit"] == "0123456789abcdef0123456789abcdef01234567"


def test_an_improvement_and_a_small_change_are_not_regressions(base, tmp_path):
    better = compare.compare_runs(base, _copy(base, tmp_path, _scale("prox_rel_mse", 1 / 3)))
    assert better.exit_code == 0 and better.improvements["metric"].tolist() == ["prox_rel_mse"]
    shutil.rmtree(tmp_path / "run-b")
    small = compare.compare_runs(base, _copy(base, tmp_path, _scale("prox_rel_mse", 1.1)))
    assert small.exit_code == 0 and small.regressions.empty
    row = small.rows[(small.rows["method"] == "hj") & (small.rows["n_samples"] == 1000)
                     & (small.rows["metric"] == "prox_rel_mse")].iloc[0]
    assert row["ratio"] == pytest.approx(1.1) and row["status"] == "unchanged"  # 10%: within repetition noise
    assert row["ci_low"] < 1.1 < row["ci_high"]


def test_a_cell_lost_in_b_sets_exit_1(base, tmp_path):
    def fail(row):
        if _in_cell(row, ("maxplus", "l1", 2, 300)):
            row.update(status="failed", message="RuntimeError: boom")
        return row

    c = compare.compare_runs(base, _copy(base, tmp_path, fail))
    assert c.exit_code == 1 and c.regressions.empty
    assert c.lost[["method", "n_samples", "statuses_b"]].values.tolist() == [["maxplus", 300, "failed x3"]]


def test_single_repetition_is_never_flagged(tmp_path):
    a = fake.make_run(tmp_path, "one-a", **{**GRID, "repetitions": 1})
    b = _copy(a, tmp_path, _scale("forward_rel_mse", 10.0))
    c = compare.compare_runs(a, b)
    assert c.exit_code == 0 and "too few repetitions" in set(c.rows["status"])


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="needs the committed results/reference")
def test_a_reference_of_another_schema_is_refused_in_one_line(base):
    from hjbench import SCHEMA_VERSION

    stored = json.loads((REFERENCE / "run.json").read_text())["schema_version"]
    if stored == SCHEMA_VERSION:
        c = compare.compare_runs(REFERENCE, REFERENCE)
        assert c.exit_code == 0
        return
    with pytest.raises(RunError) as info:
        compare.compare_runs(base, REFERENCE)
    message = str(info.value)
    assert "\n" not in message and f"schema_version={stored}" in message and "regenerate" in message
    assert "run_b=" in message
    errors = []
    assert compare.main(REFERENCE, base, err=errors.append, out=errors.append) == 2
    assert len(errors) == 1 and errors[0].startswith("error: compare: run_a=")


def test_bad_arguments_are_one_line_errors(base, tmp_path):
    with pytest.raises(ConfigError, match=r"threshold=-0\.1 must be a finite number >= 0"):
        compare.compare_runs(base, base, threshold=-0.1)
    with pytest.raises(ConfigError, match="has no better direction"):
        compare.compare_runs(base, base, metrics=["bound_name"])
    with pytest.raises(RunError, match="is not a run folder"):
        compare.compare_runs(base, tmp_path / "nope")
    errors = []
    assert compare.main(base, tmp_path, err=errors.append) == 2 and len(errors) == 1


def test_runs_with_no_common_cell_say_so(base, tmp_path):
    other = fake.make_run(tmp_path, "other", **{**GRID, "dims": (4,)})
    c = compare.compare_runs(base, other)
    assert c.exit_code == 0 and c.rows.empty
    assert any("no cell in common" in n for n in c.notes)
    assert isinstance(pd.DataFrame(json.loads(c.to_json())["rows"]), pd.DataFrame)
