"""The metric catalogue: one consistent record per results column, read by every consumer."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from hjbench import priors
from hjbench.data import sample_split
from hjbench.present.summary import summarize
from hjbench.score import catalogue
from hjbench.score.metrics import METRIC_COLUMNS
from hjbench.score.metrics import Evaluation
from hjbench.score.metrics import evaluate
from test_validity import _Planted


def _eval(method, prior):
    split = sample_split(prior, 64, n_test=50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return evaluate(method.fit(split.train), prior, split, 4.0, n_cross=11, seed=1)


def test_catalogue_is_consistent_with_the_evaluation_and_the_summary():
    assert catalogue.problems() == []
    assert tuple(Evaluation()) == METRIC_COLUMNS == catalogue.columns(stage="trial")
    prior = priors.get("neg_l1", dim=2)
    ev = _eval(_Planted(truth=prior), prior)
    assert set(ev) == set(METRIC_COLUMNS)
    for column in METRIC_COLUMNS + catalogue.columns(stage="summary"):
        m = catalogue.get(column)
        for ref in (m.raw, m.relative, m.bound, m.coverage, m.train):
            assert ref is None or ref in catalogue.CATALOGUE, (column, ref)
        if m.kind in ("float", "bool"):
            assert catalogue.label(column, "text") != column.replace("_", " ") or m.text, column
    for family, (rel, raw) in catalogue.FAMILIES.items():
        assert catalogue.get(rel).headline and catalogue.get(raw).relative == rel, family
    for m in catalogue.CATALOGUE.values():  # every prior error shows its coverage
        if m.group in ("prior", "hull") and m.column.endswith("mse"):
            assert m.coverage is not None, m.column
    rows = pd.DataFrame([{"method": "exact", "prior": "neg_l1", "dim": 2, "n_samples": 256, "t": 1.0,
                          "regime": "values", "status": "ok", **dict(ev)}])
    assert set(summarize(rows)["metric"]) == set(catalogue.summarised())
    with pytest.raises(Exception, match="metric='nope'"):
        catalogue.get("nope")


def test_present_package_keeps_no_label_or_pairing_dicts_of_its_own():
    from hjbench.present import tables
    from hjbench.present.plots import _common

    for module in (tables, _common):
        assert not hasattr(module, "METRIC_LABELS") and not hasattr(module, "BOUND_FOR"), module


def test_labels_pairings_and_errors():
    assert catalogue.label("prox_seconds_per_point", "text") == "prox [µs/point]"
    assert catalogue.get("prox_seconds_per_point").scale == 1e6
    assert catalogue.bound_for("forward_mse") == "bound_value" and catalogue.bound_for("prox_mse") is None
    assert catalogue.coverage_for("prior_hull_bvs_mse") == "prior_hull_coverage"
    assert catalogue.regime_label("values_and_gradients") == "[values+grad]" and catalogue.regime_label(None) == ""
    assert set(catalogue.columns(kind="blob")) == {"prior_ok_mask", "prior_bvs_sq_errors"}
    assert not set(catalogue.columns(kind="blob")) & set(catalogue.summarised())
    assert catalogue.columns(headline=True) == ("forward_rel_mse", "prox_rel_mse", "prior_bvs_rel_mse")


def test_results_readme_column_table_is_generated_from_the_catalogue():
    from pathlib import Path

    from hjbench.score import columns_doc

    text = (Path(__file__).resolve().parent.parent / "results" / "README.md").read_text()
    block = text.split(columns_doc.BEGIN, 1)[1].split(columns_doc.END, 1)[0].strip("\n") + "\n"
    assert block == columns_doc.markdown(), ("results/README.md's column table is stale: "
                                             "python -m hjbench.score.columns_doc")
