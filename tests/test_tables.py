"""Tables agree with the summary at the largest N; NaN is n/a or a dash, never 0; writers are well formed."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import _fake_run as fake
from hjbench.present import tables
from hjbench.present.style import registry_order


@pytest.fixture(scope="module")
def summary():
    return fake.summarize(fake.make_trials())


def _summary_value(summary, method, prior, dim, metric, field="median"):
    n = summary[(summary["prior"] == prior) & (summary["dim"] == dim)]["n_samples"].max()
    row = summary[(summary["method"] == method) & (summary["prior"] == prior) & (summary["dim"] == dim)
                  & (summary["n_samples"] == n) & (summary["metric"] == metric)]
    return float(row[field].iloc[0])


def test_errors_table_holds_the_summary_at_the_largest_n(summary):
    table = tables.errors_table(summary)
    frame = table.frame
    assert len(frame) == len(fake.METHODS) * len(fake.PRIORS) * len(fake.DIMS)
    assert (frame["n_samples"] == max(fake.N_SAMPLES)).all()
    assert list(dict.fromkeys(frame["method"])) == registry_order(fake.METHODS)
    for _, row in frame.iterrows():
        for col in table.columns:
            for field, suffix in (("median", ""), ("ci_low", "_low"), ("ci_high", "_high")):
                want = _summary_value(summary, row["method"], row["prior"], row["dim"], col.metric, field)
                got = row[col.metric + suffix]
                assert (math.isnan(want) and math.isnan(got)) or got == pytest.approx(want, rel=1e-12)


def test_raw_option_switches_to_raw_mse(summary):
    assert [c.metric for c in tables.errors_table(summary, raw=True).columns] == \
        ["forward_mse", "prox_mse", "prior_bvs_mse"]
    assert [c.metric for c in tables.errors_table(summary).columns] == \
        ["forward_rel_mse", "prox_rel_mse", "prior_bvs_rel_mse"]


def test_timings_are_scaled_to_microseconds_per_point(summary):
    frame = tables.timings_table(summary).frame
    row = frame[(frame["method"] == "hj") & (frame["prior"] == "l1") & (frame["dim"] == 2)].iloc[0]
    want = _summary_value(summary, "hj", "l1", 2, "prox_seconds_per_point")
    assert row["prox_seconds_per_point"] == pytest.approx(1e6 * want)


def _md_rows(text):
    """Markdown body cells; the method cell back to the bare method name (no regime, no ‡)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return [[r[0].split(" [")[0].rstrip("‡")] + r[1:] for r in rows]


def test_nan_is_never_shown_as_zero(summary):
    table = tables.errors_table(summary)
    rows = _md_rows(tables.to_markdown(table))
    header, body = rows[0], rows[2:]
    assert all(len(r) == len(header) for r in body)
    for r in body:
        method, prior, dim = r[0], r[1], int(r[2])
        for col, text in zip(table.columns, r[4:-1]):
            median = _summary_value(summary, method, prior, dim, col.metric)
            if math.isnan(median):
                assert text in ("n/a", "—"), (method, prior, dim, col.metric, text)
            else:
                assert float(text.split(" ")[0]) == pytest.approx(median, rel=5e-3)
    by_key = {(r[0], r[1], int(r[2])): r for r in body}
    m, p, d, _ = fake.FAILED_CELL
    assert by_key[(m, p, d)][4:7] == ["—", "—", "—"]          # failed: not computed
    assert by_key[("lista", "l1", 2)][4] == "n/a"              # no potential: not applicable
    assert by_key[("lista", "l1", 2)][6] == "n/a"              # no prior: not applicable
    m, p, d, _ = fake.ZERO_CELL
    assert by_key[(m, p, d)][5].startswith("0 ")               # a true zero stays a zero


def test_partial_cells_carry_a_dagger(summary):
    changed = summary.copy()
    at = (changed["method"] == "hj") & (changed["prior"] == "l1") & (changed["dim"] == 2) \
        & (changed["n_samples"] == max(fake.N_SAMPLES))
    changed.loc[at, "n_finite"] = 2
    changed.loc[at, "n_ok"] = 2
    rows = _md_rows(tables.to_markdown(tables.errors_table(changed)))
    row = next(r for r in rows if r[:3] == ["hj", "l1", "2"])
    assert all(cell.endswith("†") for cell in row[4:7]) and row[-1] == "2/3"


def test_latex_is_booktabs_and_escaped(summary):
    table = tables.errors_table(summary)
    tex = tables.to_latex(table, label="tab:errors")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}{llrrrrrr}", r"\label{tab:errors}"):
        assert rule in tex
    body = tex.split(r"\midrule")[1].split(r"\bottomrule")[0]
    rows = [ln for ln in body.splitlines() if ln.endswith(r"\\")]
    assert len(rows) == len(table.frame)
    assert all(ln.count(" & ") == 4 + len(table.columns) for ln in rows)
    assert r"neg\_l1" in body and "neg_l1" not in body.replace(r"neg\_l1", "")
    assert "---" in body and "n/a" in body and "nan" not in body.lower()
    assert r"{\times}10^{" in body  # numbers typeset, not 1.2e-03


def test_html_table_escapes_and_matches_the_frame(summary):
    html_text = tables.to_html(tables.errors_table(summary))
    assert html_text.count("<tr>") == 1 + len(tables.errors_table(summary).frame)
    assert "<script" not in html_text and "n/a" in html_text


def test_write_tables_writes_markdown_and_latex(summary, tmp_path):
    paths = tables.write_tables(summary, tmp_path)
    assert sorted(p.name for p in paths) == ["errors.md", "errors.tex", "prior.md", "prior.tex", "timings.md",
                                             "timings.tex"]
    assert all(p.read_text(encoding="utf-8").strip() for p in paths)
    assert tables.FOOTNOTE in (tmp_path / "errors.md").read_text(encoding="utf-8")


def test_a_method_failed_only_at_the_largest_n_is_a_dash_not_a_smaller_n(summary):
    frame = tables.errors_table(summary).frame
    m, p, d, n = fake.FAILED_CELL
    row = frame[(frame["method"] == m) & (frame["prior"] == p) & (frame["dim"] == d)].iloc[0]
    assert row["n_samples"] == n and np.isnan(row["forward_rel_mse"]) and row["forward_rel_mse_status"] == "missing"
    assert isinstance(summary, pd.DataFrame)


# -- valid comparisons: coverage beside prior errors, optimisation-limited cells, data regimes -------
@pytest.fixture(scope="module")
def rich():
    """hjbench's own summary of the fake trials with the validity columns added: hj is
    optimisation-limited at l1, dim 2, the largest N; maxplus covers 60% of the prior points and
    has an infinite prior error at neg_l1, dim 4."""
    from hjbench.present.summary import summarize

    trials = fake.make_trials()
    n_max = max(fake.N_SAMPLES)
    ok = trials["status"] == "ok"
    trials["opt_limited"] = [bool(m == "hj" and p == "l1" and d == 2 and n == n_max) if s else None
                             for m, p, d, n, s in zip(trials.method, trials.prior, trials.dim, trials.n_samples, ok)]
    has_prior = trials["prior_bvs_mse"].notna()
    trials["prior_coverage"] = np.where(has_prior, np.where(trials.method == "maxplus", 0.6, 1.0), np.nan)
    inf = (trials.method == "maxplus") & (trials.prior == "neg_l1") & (trials.dim == 4)
    trials.loc[inf, "prior_bvs_rel_mse"] = np.inf
    return summarize(trials, n_boot=200)


def test_prior_errors_carry_their_coverage_and_infinity_is_shown(rich):
    table = tables.errors_table(rich)
    assert [c.metric for c in table.columns] == ["forward_rel_mse", "prox_rel_mse", "prior_bvs_rel_mse",
                                                 "prior_coverage"]
    rows = _md_rows(tables.to_markdown(table))
    by_key = {(r[0], r[1], int(r[2])): r for r in rows[2:]}
    assert by_key[("maxplus", "l1", 2)][7].startswith("0.6") and by_key[("hj", "l1", 2)][7].startswith("1")
    assert by_key[("maxplus", "neg_l1", 4)][6] == "∞" and by_key[("lista", "l1", 2)][7] == "n/a"


def test_optimisation_limited_cells_carry_a_double_dagger_and_regimes_are_named(rich):
    text = tables.to_markdown(tables.errors_table(rich))
    marked = [ln for ln in text.splitlines() if ln.startswith("|") and "‡" in ln.split("|")[1]]
    assert len(marked) == 1 and marked[0].startswith("| hj [values]‡ | l1 | 2 |")
    assert "‡: optimisation-limited" in text and "| lpn [" in text
    assert r"$^\ddagger$" in tables.to_latex(tables.errors_table(rich))


def test_all_n_tables_and_sortable_html(rich):
    table = tables.errors_table(rich, all_n=True)
    assert len(table.frame) == len(fake.METHODS) * len(fake.PRIORS) * len(fake.DIMS) * len(fake.N_SAMPLES)
    flagged = table.frame[table.frame["opt_limited"]]
    assert list(flagged[["method", "prior", "dim", "n_samples"]].itertuples(index=False, name=None)) == \
        [("hj", "l1", 2, max(fake.N_SAMPLES))]
    page = tables.to_html(table, sortable=True)
    assert "<table class=sortable>" in page and page.count("data-v=") == len(table.frame) * len(table.columns)
    assert "<script" not in page and "<script" in tables.SORT_SCRIPT


def test_prior_table_shows_converged_common_and_hull_errors_with_coverage():
    from hjbench.present.summary import summarize

    trials = fake.make_trials()
    for col, value in (("prior_bvs_mse_converged", 1e-3), ("prior_coverage", 0.9), ("prior_hull_bvs_mse", 0.2),
                       ("prior_hull_coverage", 1.0)):
        trials[col] = np.where(trials["prior_bvs_mse"].notna(), value, np.nan)
    table = tables.prior_table(summarize(trials, n_boot=50))
    assert [c.metric for c in table.columns] == ["prior_bvs_mse", "prior_coverage", "prior_bvs_mse_converged",
                                                 "prior_hull_bvs_mse", "prior_hull_coverage"]
