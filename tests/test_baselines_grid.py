"""On a small grid through the real runner, every baseline's held-out error falls with n_samples.

Issue "Baselines", what must hold: each baseline's held-out errors decrease with n_samples on at
least the l1 family. The grid is the default grid's shape, shrunk (dim 2, one repetition, a
short common budget); medians come from the run's own summary.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from hjbench import methods
from hjbench.present import summary as analysis
from hjbench.run.config import validate
from hjbench.run.runner import run_grid

BASELINES = [n for n in methods.names() if methods.entry(n).source == "baselines"]
# the error each method is judged on: its forward error where it has a potential, else its prox error
METRIC = {name: ("forward_rel_mse" if "potential" in methods.get(name).provides else "prox_rel_mse")
          for name in BASELINES}


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    cfg = validate({"name": "baseline_grid", "dims": [2], "n_samples": [16, 512], "repetitions": 1,
                    "n_test": 500, "n_cross": 11, "methods": BASELINES, "priors": ["l1"],
                    "device": "cpu", "budget": {"steps": 250, "width": 32, "depth": 2, "lr": 1e-2,
                                                "lr_decay": 0.3}})
    run_dir = tmp_path_factory.mktemp("grid") / "run"
    outcome = run_grid(cfg, run_dir, run_id="baseline_grid", console=Console(file=io.StringIO()),
                       show_progress=False)
    assert outcome.counts.get("ok") == len(BASELINES) * 2, outcome.counts
    from hjbench.run.folder import load_trials

    return analysis.summarize(load_trials(run_dir))


@pytest.mark.parametrize("name", BASELINES)
def test_held_out_error_falls_with_n_samples(summary, name):
    rows = summary[(summary.method == name) & (summary.metric == METRIC[name])].sort_values("n_samples")
    small, large = rows["median"].tolist()
    assert large < small / 2, f"{name}: {METRIC[name]} {small:.3g} at N=16 -> {large:.3g} at N=512"
