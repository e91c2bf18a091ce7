"""Pinned rows: a tiny grid's metric values, bit for bit on CPU.

A refactoring must not change what the suite measures. These values were produced by this
grid on the CPU with one thread; a change of the code that moves any of them must say why in
its commit, and update the pins with

    python -c "import tests.test_pinned_rows as t; [print(f'    {k!r}: {v!r},') for k, v in t.rows().items()]"
"""

from __future__ import annotations

import io
from pathlib import Path
import tempfile
from rich.console import Console
from hjbench.run.validate import validate
from hjbench.run.runner import run_grid
RAW = {"name": "pin", "dims": [2], "n_samples": [64], "repetitions": 1, "n_test": 64, "n_cross": 11,
       "methods": ["hj", "maxplus", "convex_envelope"], "priors": ["l1", "neg_l1"], "device": "cpu",
       "budget": {"steps": 100, "width": 16, "depth": 1, "lr": 1e-2}}
COLS = ("forward_rel_mse", "prox_rel_mse", "prior_bvs_rel_mse")
def rows():
    with tempfile.TemporaryDirectory() as tmp:
        out = run_grid(validate(RAW), Path(tmp) / "run", run_id="pin", jobs=0, show_progress=False,
                       console=Console(file=io.StringIO()))
        df = out.trials.sort_values(["method", "prior"])
        return {(r.method, r.prior): tuple(float(getattr(r, c)) for c in COLS) for r in df.itertuples()}


PINNED = {
    ('convex_envelope', 'l1'): (0.0622388244056915, 0.150189315993732, 0.020765748597743466),
    ('convex_envelope', 'neg_l1'): (0.06388440484708004, 4.7841760931128885, 0.02558593562469119),
    ('hj', 'l1'): (0.9617310790599055, 0.656217287703917, 20.051569893132424),
    ('hj', 'neg_l1'): (0.8117417567748966, 0.7110516464089364, 59.101566716203244),
    ('maxplus', 'l1'): (0.01071307136081192, 0.0508363136656081, 0.02076573663742523),
    ('maxplus', 'neg_l1'): (0.0021299045105492823, 0.03090864745290478, 0.02558592125853154),
}


def test_a_tiny_grid_reproduces_its_pinned_metric_values_bit_for_bit():
    got = rows()
    assert set(got) == set(PINNED)
    for key, values in PINNED.items():
        assert got[key] == values, f"{key}: {got[key]} != pinned {values}"
