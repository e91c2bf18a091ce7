"""Discovery is structural (docs/method.md, convention C3): every concrete component is registered.

Walks the hjbench and baselines packages, finds every concrete subclass of the method and
prior contracts, and fails if one is not in its registry, so nothing escapes the batteries.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import baselines
import hjbench
from hjbench import methods, priors
from hjbench.methods import AbstractMethod
from hjbench.priors import AbstractPrior

# Modules that need optional heavy imports at import time and hold no components.
SKIP_MODULES = {"hjbench.__main__"}


def _concrete_subclasses(base):
    found = set()
    for package in (hjbench, baselines):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name in SKIP_MODULES:
                continue
            module = importlib.import_module(info.name)
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if (issubclass(obj, base) and obj is not base and obj.__module__ == module.__name__
                        and not obj.__name__.startswith(("Abstract", "_"))):
                    found.add(obj)
    return found


@pytest.mark.parametrize("base, registry", [(AbstractMethod, methods), (AbstractPrior, priors)],
                         ids=["methods", "priors"])
def test_every_concrete_component_is_registered(base, registry):
    registered = {registry.entry(name).cls for name in registry.names()}
    missing = sorted(c.__qualname__ for c in _concrete_subclasses(base) - registered)
    assert not missing, f"concrete components not registered: {missing}"


def test_baselines_arrive_through_the_plugin_path():
    sources = {methods.entry(n).source for n in methods.names()}
    assert sources == {"hjbench", "baselines"}
    assert methods.names()[0] == "hj"
    assert methods.names() == methods.names()  # stable order


def test_import_is_cheap():
    import subprocess
    import sys

    code = ("import sys, hjbench; heavy = [m for m in ('jax', 'matplotlib', 'pandas', 'torch') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import hjbench pulled in {out.stdout.strip()}"
