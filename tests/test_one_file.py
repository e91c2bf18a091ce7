"""Adding a prior family or a method is one new file, with no other edit.

A temporary copy of the repository gets one new prior module in ``hjbench/priors/`` and one
new method module in ``baselines/``; in a fresh interpreter on that copy both are registered,
listed by ``hjbench list``, run in a grid, and checked by the generic batteries.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

METHOD = '''
"""A toy method: the prox that scales every point by one learned factor."""
import torch
from hjbench import methods
from hjbench.methods import AbstractMethod


class ToyShrink(AbstractMethod):
    """Toy: prox(x) = s x with s fitted by least squares on prox pairs."""

    provides = frozenset({"prox"})
    test_params = {}

    def __init__(self, *, ridge: float = 1.0):
        self.ridge = ridge

    @property
    def data_regime(self):
        return "prox_pairs"

    def _fit(self, data, generator):
        x, p = data.x, data.prox
        self.scale_ = float((x * p).sum() / ((x * x).sum() + self.ridge))

    def _prox(self, x):
        return self.scale_ * x

    def _state(self):
        return {"scale": self.scale_}

    def _load_state(self, state):
        self.scale_ = float(state["scale"])


methods.register("toy_shrink", ToyShrink)
'''


def _copy(tmp: Path) -> Path:
    repo = tmp / "repo"
    for part in ("hjbench", "baselines", "tests", "configs"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns("__pycache__"))
    src = (ROOT / "hjbench" / "priors" / "concave_quadratic.py").read_text()
    new = src.replace('@register("concave_quadratic")', '@register("toy_quadratic")')
    new = new.replace("class ConcaveQuadraticPrior", "class ToyQuadraticPrior")
    (repo / "hjbench" / "priors" / "toy_quadratic.py").write_text(new)
    (repo / "baselines" / "toy_shrink.py").write_text(METHOD)
    return repo


def _env(repo: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(repo), "HJBENCH_PLUGINS": "baselines", "OMP_NUM_THREADS": "1"}


def test_one_new_file_each_is_registered_listed_run_and_checked(tmp_path):
    repo = _copy(tmp_path)
    env = _env(repo)
    listed = subprocess.run([sys.executable, "-m", "hjbench", "list"], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "toy_quadratic" in listed.stdout and "toy_shrink" in listed.stdout
    run = subprocess.run([sys.executable, "-m", "hjbench", "run", "--methods", "toy_shrink,maxplus", "--priors",
                          "toy_quadratic", "--dims", "2", "--n-samples", "32", "--repetitions", "1", "--jobs", "0",
                          "--config", "configs/smoke.toml", "--out", str(tmp_path / "out"), "--no-progress",
                          "--no-figure"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    battery = subprocess.run([sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider",
                              "tests/test_priors.py", "tests/test_method_conformance.py", "tests/test_discovery.py",
                              "-k", "toy"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert battery.returncode == 0, battery.stdout[-3000:]
    passed = [line for line in battery.stdout.splitlines() if "PASSED" in line]
    assert sum("toy_quadratic" in line for line in passed) >= 10, battery.stdout[-3000:]
    assert sum("toy_shrink" in line for line in passed) >= 8, battery.stdout[-3000:]
