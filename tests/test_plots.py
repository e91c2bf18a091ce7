"""Figures check their data: plotted lines equal the summary, bounds equal hjbench.score.bounds,
every method has its line, gaps stay gaps, values <= 0 are reported, no zero lines."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import _fake_run as fake
from hjbench.present import plots
from hjbench.errors import ConfigError


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = fake.make_run(tmp_path_factory.mktemp("plots"))
    return run_dir, pd.read_parquet(run_dir / "summary.parquet"), pd.read_parquet(run_dir / "trials.parquet")


@pytest.fixture(scope="module")
def figures(run):
    run_dir, summary, trials = run
    out = run_dir / "figures"
    def draw(metric, formats=("png",)):  # PDFs are slow to write: one figure checks them
        return plots.error_vs_n(summary, out, metric, trials=trials, keep_figure=True, formats=formats)

    return {"forward_rel_mse": draw("forward_rel_mse", ("pdf", "png")),
            **{m: draw(m) for m in ("forward_mse", "prox_rel_mse", "prior_bvs_rel_mse")}}


def _lines(result, prefix):
    """{(prior, dim, method): Line2D} of the figure's method lines for one metric."""
    out = {}
    for ax in result.figure.axes:
        for line in ax.get_lines():
            gid = line.get_gid() or ""
            if gid.startswith(prefix + "|"):
                _, prior, dim, method = gid.split("|")
                out[(prior, int(dim), method)] = line
    return out


def _expected(summary, metric, prior, dim, method, ns):
    """The summary's medians on ``ns``; NaN where no finite value or <= 0 (a log-axis gap)."""
    sub = summary[(summary["metric"] == metric) & (summary["prior"] == prior) & (summary["dim"] == dim)
                  & (summary["method"] == method)].set_index("n_samples").reindex(ns)
    med = sub["median"].to_numpy(float)
    return np.where(np.isfinite(med) & (med > 0), med, np.nan)


@pytest.mark.parametrize("metric", ["forward_rel_mse", "forward_mse", "prox_rel_mse", "prior_bvs_rel_mse"])
def test_plotted_lines_equal_summary_medians(run, figures, metric):
    _, summary, _ = run
    result = figures[metric]
    lines = _lines(result, metric)
    assert lines
    for (prior, dim, method), line in lines.items():
        ns = np.asarray(line.get_xdata(), dtype=int)
        want = _expected(summary, metric, prior, dim, method, ns)
        np.testing.assert_allclose(line.get_ydata(), want, rtol=1e-12, equal_nan=True)
        data = result.data[(result.data["series"] == "method") & (result.data["prior"] == prior)
                           & (result.data["dim"] == dim) & (result.data["method"] == method)]
        np.testing.assert_allclose(data["y"].to_numpy(float), want, rtol=1e-12, equal_nan=True)


@pytest.mark.parametrize("metric", ["forward_rel_mse", "prox_rel_mse", "prior_bvs_rel_mse"])
def test_every_method_with_the_output_has_its_line_in_every_panel(run, figures, metric):
    _, summary, _ = run
    lines = _lines(figures[metric], metric)
    sub = summary[summary["metric"] == metric]
    for (prior, dim), panel in sub.groupby(["prior", "dim"]):
        has_values = set(panel.loc[panel["n_finite"] > 0, "method"])
        drawn = {m for (p, d, m) in lines if (p, d) == (prior, dim)}
        assert has_values <= drawn, (prior, dim, has_values - drawn)
    assert {m for (_, _, m) in lines} == set(sub.loc[sub["n_finite"] > 0, "method"])


def test_bound_line_matches_hjbench_bounds(run, figures):
    _, summary, _ = run
    try:
        from hjbench import priors
        from hjbench.score import bounds

        want = lambda prior, dim, n: bounds.bound_for_prior(priors.get(prior, dim=dim, t=1.0), n, fake.BOX).value  # noqa: E731
        want(fake.PRIORS[0], fake.DIMS[0], fake.N_SAMPLES[0])
    except Exception:  # hjbench.score.bounds or the priors not importable: the summary's rows are the reference
        def want(prior, dim, n):
            rows = summary[(summary["metric"] == "bound_value") & (summary["prior"] == prior)
                           & (summary["dim"] == dim) & (summary["n_samples"] == n)]
            return float(rows["median"].median())
    n_lines = 0
    for ax in figures["forward_mse"].figure.axes:
        for line in ax.get_lines():
            if (line.get_gid() or "").startswith("bound|bound_value|"):
                _, _, prior, dim = line.get_gid().split("|")
                expected = [want(prior, int(dim), int(n)) for n in line.get_xdata()]
                np.testing.assert_allclose(line.get_ydata(), expected, rtol=1e-9)
                assert line.get_linestyle() == "--"
                n_lines += 1
    assert n_lines == len(fake.PRIORS) * len(fake.DIMS)


def test_relative_bound_is_the_summary_bound_rel_value(run, figures):
    _, summary, _ = run
    rows = figures["forward_rel_mse"].data
    bound = rows[rows["series"] == "bound"]
    assert len(bound) == len(fake.PRIORS) * len(fake.DIMS) * len(fake.N_SAMPLES)
    for _, r in bound.iterrows():
        sub = summary[(summary["metric"] == "bound_rel_value") & (summary["prior"] == r["prior"])
                      & (summary["dim"] == r["dim"]) & (summary["n_samples"] == r["n_samples"])]
        assert r["y"] == pytest.approx(sub["median"].median(), rel=1e-12)
    assert not (figures["prox_rel_mse"].data["series"] == "bound").any()  # the bound is on forward MSE only


def test_method_without_prior_has_no_prior_line_and_no_zero_line(figures):
    result = figures["prior_bvs_rel_mse"]
    assert not any(m == "lista" for (_, _, m) in _lines(result, "prior_bvs_rel_mse"))
    for ax in result.figure.axes:
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), dtype=float)
            assert not (y.size and np.all(y[np.isfinite(y)] == 0) and np.isfinite(y).any()), line.get_gid()
    assert any("lista" in n and "not applicable" in n for n in result.notes)
    assert "lista" not in set(result.data["method"])


def test_failed_cell_is_a_gap_with_its_reason(figures):
    method, prior, dim, n = fake.FAILED_CELL
    result = figures["forward_rel_mse"]
    line = _lines(result, "forward_rel_mse")[(prior, dim, method)]
    k = list(line.get_xdata()).index(n)
    assert math.isnan(line.get_ydata()[k])
    row = result.data[(result.data["method"] == method) & (result.data["prior"] == prior)
                      & (result.data["dim"] == dim) & (result.data["n_samples"] == n)].iloc[0]
    assert row["status"] == "missing" and "failed x3" in row["reason"] and "diverged" in row["reason"]
    assert any("failed x3" in note and f"N={n}" in note for note in result.notes)
    marks = [ln for ax in result.figure.axes for ln in ax.get_lines()
             if ln.get_gid() == f"edge-x|forward_rel_mse|{prior}|{dim}|{method}"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [n]


def test_absent_middle_cell_is_not_interpolated(run, tmp_path):
    _, summary, _ = run
    n_mid = fake.N_SAMPLES[1]
    drop = (summary["method"] == "hj") & (summary["prior"] == "l1") & (summary["dim"] == 2) \
        & (summary["n_samples"] == n_mid)
    result = plots.error_vs_n(summary[~drop], tmp_path, "prox_rel_mse", keep_figure=True, formats=("png",))
    line = _lines(result, "prox_rel_mse")[("l1", 2, "hj")]
    y = np.asarray(line.get_ydata(), dtype=float)
    assert list(line.get_xdata()) == list(fake.N_SAMPLES)
    assert np.isfinite(y[0]) and math.isnan(y[1]) and np.isfinite(y[2])
    assert any("hj, l1, dim 2, N=300: no trial" in note for note in result.notes)


def test_zero_and_negative_values_are_reported_not_dropped(figures):
    method, prior, dim, n = fake.ZERO_CELL
    result = figures["prox_rel_mse"]
    row = result.data[(result.data["method"] == method) & (result.data["prior"] == prior)
                      & (result.data["dim"] == dim) & (result.data["n_samples"] == n)].iloc[0]
    assert row["median"] == 0 and row["status"] == "nonpositive" and math.isnan(row["y"])
    assert any(f"{method}, {prior}, dim {dim}, N={n}" in note and "<= 0" in note for note in result.notes)
    assert any(ln.get_gid() == f"edge-v|prox_rel_mse|{prior}|{dim}|{method}"
               for ax in result.figure.axes for ln in ax.get_lines())
    # an interval reaching <= 0 (a negative repetition) is reported too
    method, prior, dim, n = fake.NEGATIVE_CELL
    assert any(f"{method}, {prior}, dim {dim}, N={n}" in note and "interval reaches <= 0" in note
               for note in figures["forward_rel_mse"].notes)


def test_legend_slopes_are_least_squares_on_log_medians(run, figures):
    _, summary, _ = run
    result = figures["forward_rel_mse"]
    ax = result.figure.axes[0]  # first prior, first dim
    prior, dim = fake.PRIORS[0], fake.DIMS[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    for method in ("hj", "lpn", "maxplus"):
        y = _expected(summary, "forward_rel_mse", prior, dim, method, list(fake.N_SAMPLES))
        ok = np.isfinite(y)
        slope = np.polyfit(np.log10(np.array(fake.N_SAMPLES)[ok]), np.log10(y[ok]), 1)[0]
        assert f"{slope:+.2f}" in texts
    title = ax.get_legend().get_title().get_text()
    assert title.startswith("slopes; bound ") and "theory" in title


def test_bound_ratio_has_a_line_at_one_and_summary_values(run, tmp_path):
    _, summary, _ = run
    result = plots.bound_ratio(summary, tmp_path, keep_figure=True, formats=("png",))
    assert all(any(ln.get_gid() == "reference|1" for ln in ax.get_lines()) for ax in result.figure.axes[:4])
    for (prior, dim, method), line in _lines(result, "bound_ratio").items():
        want = _expected(summary, "bound_ratio", prior, dim, method, np.asarray(line.get_xdata(), dtype=int))
        np.testing.assert_allclose(line.get_ydata(), want, rtol=1e-12, equal_nan=True)


def test_cost_figures_plot_the_summary_timings(run, tmp_path):
    _, summary, trials = run
    out = plots.cost_figures(summary, tmp_path, trials=trials, formats=("png",))
    fit = out["fit_time"].data
    sub = summary[summary["metric"] == "fit_seconds"]
    for _, r in fit.iterrows():
        cell = sub[(sub["method"] == r["method"]) & (sub["dim"] == r["dim"]) & (sub["n_samples"] == r["n_samples"])]
        assert r["y"] == pytest.approx(cell["median"].median(), rel=1e-12)
        assert r["device"] == "cpu"
    bars = out["eval_time"].data
    lista = bars[(bars["method"] == "lista") & (bars["metric"] == "prior_seconds_per_point")]
    assert lista["y"].isna().all()  # no prior: no bar, an "n/a" label
    assert all(p.exists() for r in out.values() for p in r.paths)


# -- cross-sections, with the stand-in fitted methods of _fake_run ------------------------------------
def test_cross_section_curves_are_the_methods_outputs(tmp_path):
    from hjbench import priors

    prior = priors.get("l1", dim=3, t=1.0)
    fitted = fake.fitted_standins(prior)
    result = plots.cross_section_figure(prior, fitted, tmp_path, box=4.0, n_points=41,
                                        dtype=torch.float64, keep_figure=True, formats=("png",))
    gids = {ln.get_gid(): ln for ax in result.figure.axes for ln in ax.get_lines() if ln.get_gid()}
    from hjbench.data import cross_sections

    pts = cross_sections(3, box=4.0, n_points=41)
    for section in ("axis", "diagonal"):
        x = pts[section]
        np.testing.assert_allclose(gids[f"method|potential|{section}|hj"].get_ydata(), (prior.psi(x) + 0.1).numpy())
        np.testing.assert_allclose(gids[f"method|prior|{section}|hj"].get_ydata(), (prior.J_bvs(x) + 0.1).numpy())
        np.testing.assert_allclose(gids[f"truth|prior|{section}|J"].get_ydata(), prior.J(x).numpy())
        np.testing.assert_allclose(gids[f"truth|prior|{section}|J_bvs"].get_ydata(), prior.J_bvs(x).numpy())
        np.testing.assert_allclose(gids[f"truth|potential|{section}|psi"].get_ydata(), prior.psi(x).numpy())
    assert not any("lista" in g for g in gids)  # no prior and no potential curve, never a zero line
    assert any("no prior curve for lista" in n for n in result.notes)
    assert any("hj, prior along the axis" in n and "did not converge" in n for n in result.notes)
    assert not any("diagonal" in n and "converge" in n for n in result.notes)  # |s/sqrt(3)| <= 3.5


def test_figure_files_are_pdf_and_300_dpi_png(figures):
    from PIL import Image

    paths = figures["forward_rel_mse"].paths
    assert [p.suffix for p in paths] == [".pdf", ".png"] and paths[0].read_bytes()[:4] == b"%PDF"
    for result in figures.values():
        with Image.open(result.png) as im:
            assert im.info["dpi"][0] == pytest.approx(300, abs=1)
            assert im.size[0] <= 7.3 * 300  # fits a full-width paper figure


def test_method_colours_follow_the_registry_in_every_figure(figures):
    colours = {}
    for result in figures.values():
        for ax in result.figure.axes:
            for line in ax.get_lines():
                parts = (line.get_gid() or "").split("|")
                if len(parts) == 4 and not parts[0].startswith(("bound", "edge", "band")):
                    colours.setdefault(parts[3], set()).add(line.get_color())
    assert all(len(c) == 1 for c in colours.values()), colours
    assert len({next(iter(c)) for c in colours.values()}) == len(colours)


def test_run_figure_is_the_forward_error_of_the_run(tmp_path):
    """What ``hjbench run`` writes at its end: forward relative MSE against N, next to the results."""
    run_dir = fake.make_run(tmp_path, methods=("hj", "lista"), priors=("l1",), dims=(2,), repetitions=2)
    result = plots.run_figure(run_dir)
    assert [p.name for p in result] == ["error_vs_n_forward_rel_mse.pdf", "error_vs_n_forward_rel_mse.png"]
    assert all(p.parent == run_dir / "figures" and p.stat().st_size > 0 for p in result)
    assert set(result.data.loc[result.data["series"] == "method", "method"]) == {"hj"}
    assert any("lista" in note and "not applicable" in note for note in result.notes)


def test_unknown_metric_or_format_is_a_config_error(run, tmp_path):
    with pytest.raises(ConfigError, match="metric='nope'"):
        plots.error_vs_n(run[1], tmp_path, "nope")
    with pytest.raises(ConfigError, match="formats="):
        plots.error_vs_n(run[1], tmp_path, "prox_mse", formats=("svgz",))


def test_importing_hjbench_and_plots_does_not_touch_pyplot():
    code = ("import sys, hjbench; a = 'matplotlib' in sys.modules; import hjbench.present.plots; "
            "print(a, 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- valid comparisons: optimisation-limited points, data regimes, infinite medians ----------------------
@pytest.fixture(scope="module")
def flagged(tmp_path_factory):
    """hjbench's summary of the fake trials with hj optimisation-limited at l1, dim 2, largest N,
    and maxplus's prior error +inf at neg_l1, dim 4, smallest N; the forward figure drawn from it."""
    from hjbench.present.summary import summarize

    trials = fake.make_trials()
    n_max = max(fake.N_SAMPLES)
    trials["opt_limited"] = [m == "hj" and p == "l1" and d == 2 and n == n_max
                             for m, p, d, n in zip(trials.method, trials.prior, trials.dim, trials.n_samples)]
    inf = (trials.method == "maxplus") & (trials.prior == "neg_l1") & (trials.dim == 4) \
        & (trials.n_samples == min(fake.N_SAMPLES))
    trials.loc[inf, "prior_bvs_rel_mse"] = np.inf
    summary = summarize(trials, n_boot=200)
    out = tmp_path_factory.mktemp("flagged")
    return summary, out, plots.error_vs_n(summary, out, "forward_rel_mse", keep_figure=True, formats=("png",))


def test_optimisation_limited_points_are_open_and_left_out_of_the_slope(flagged):
    summary, _, result = flagged
    n_max = max(fake.N_SAMPLES)
    gids = {ln.get_gid(): ln for ax in result.figure.axes for ln in ax.get_lines() if ln.get_gid()}
    hollow = gids["open|forward_rel_mse|l1|2|hj"]
    assert list(hollow.get_xdata()) == [n_max] and hollow.get_markerfacecolor() == "none"
    assert n_max not in [gids["forward_rel_mse|l1|2|hj"].get_xdata()[k]
                         for k in gids["forward_rel_mse|l1|2|hj"].get_markevery()]
    assert not any(g.startswith("open|") and "|hj" not in g for g in gids)
    rows = result.data[(result.data["method"] == "hj") & (result.data["prior"] == "l1") & (result.data["dim"] == 2)]
    kept = rows[~rows["opt_limited"]]
    slope = np.polyfit(np.log10(kept["n_samples"]), np.log10(kept["y"]), 1)[0]
    assert rows["slope"].iloc[0] == pytest.approx(slope) and rows["opt_limited"].sum() == 1
    assert any("optimisation-limited" in note and "slopes" in note for note in result.notes)
    legend = [t.get_text() for t in result.figure.legends[0].get_texts()]
    assert "optimisation-limited (not in slopes)" in legend


def test_methods_are_labelled_with_their_data_regime_and_split_by_regime(flagged):
    summary, out, result = flagged
    legend = [t.get_text() for t in result.figure.legends[0].get_texts()]
    assert "hj [values]" in legend
    per = plots.error_vs_n_by_regime(summary, out, "prox_rel_mse", keep_figure=True, formats=("png",))
    from hjbench.present.style import method_regimes

    regimes = method_regimes(summary)
    assert set(per) == {regimes[m] for m in fake.METHODS if regimes[m]}
    for regime, r in per.items():
        assert set(r.data.loc[r.data["series"] == "method", "method"]) == \
            {m for m in fake.METHODS if regimes[m] == regime}
        assert r.paths[0].name == f"error_vs_n_prox_rel_mse_{regime}.png"


def test_an_infinite_median_is_a_gap_with_its_reason(flagged):
    summary, out, _ = flagged
    result = plots.error_vs_n(summary, out, "prior_bvs_rel_mse", keep_figure=True, formats=("png",))
    row = result.data[(result.data["method"] == "maxplus") & (result.data["prior"] == "neg_l1")
                      & (result.data["dim"] == 4) & (result.data["n_samples"] == min(fake.N_SAMPLES))].iloc[0]
    assert row["status"] == "infinite" and math.isnan(row["y"]) and "+inf" in row["reason"]
    assert any("maxplus, neg_l1, dim 4" in note and "+inf" in note for note in result.notes)


def test_n_label_is_compact_only_where_exact():
    from hjbench.present.plots._common import n_label

    assert [n_label(n) for n in (64, 1000, 2500, 2048, 20000, 10**6, 2**20)] == \
        ["64", "1k", "2.5k", "2048", "20k", "1M", "1048576"]
