"""The README's "add a method" example runs as written and passes basic contract checks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_method_example_runs():
    text = README.read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "methods.register" in b)
    check = block + """
from hjbench import priors
from hjbench.data import sample_split
p = priors.get("concave_quadratic", dim=3)
split = sample_split(p, 200, n_test=50, generator=torch.Generator().manual_seed(0))
m = methods.get("shrink_to_zero").fit(split.train, seed=0)
err = float(((m.prox(split.test.x) - p.prox(split.test.x)) ** 2).mean())
assert err < 1e-8, err
assert "shrink_to_zero" in methods.names()
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
