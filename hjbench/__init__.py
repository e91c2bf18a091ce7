"""hjbench: benchmarking learned proximal operators and priors (Hamilton-Jacobi method and baselines).

Importing hjbench is cheap: it sets up no device and imports neither JAX nor plotting
libraries; subpackages are imported on first attribute access.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
SCHEMA_VERSION = 2

_SUBMODULES = {"priors", "data", "nets", "methods", "training", "run", "score", "present",
               "errors", "solution", "registry", "seeds", "quadratic", "tasks", "jax_bridge"}

# the Python API (hjbench.api); `run` is also the runner subpackage, which hjbench.api makes callable
_API = {"run", "load", "load_model", "Run"}

__all__ = sorted(_SUBMODULES | _API) + ["__version__", "SCHEMA_VERSION"]


def __getattr__(name: str):
    if name in _API:
        api = importlib.import_module(".api", __name__)
        if name not in _SUBMODULES:
            return getattr(api, name)
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'hjbench' has no attribute {name!r}")
