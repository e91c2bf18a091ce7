"""Baseline learners for hjbench, packaged as a plug-in (BRIEF section 5).

hjbench discovers this package through the entry point ``hjbench.methods = baselines:register``
declared in pyproject.toml, exactly as a third-party package would plug in its own methods.
Run from ``PYTHONPATH`` without installing, set ``HJBENCH_PLUGINS=baselines`` instead.
"""

from __future__ import annotations

_MODULES = ("maxplus", "lpn", "lista", "pnp")


def register() -> None:
    """Import every baseline module; each registers its methods into ``hjbench.methods``."""
    import importlib
    import warnings

    for name in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{name}")
        except Exception as exc:  # one broken baseline must not hide the others
            warnings.warn(f"baselines: {name} failed to import and is not registered: {exc}",
                          stacklevel=2)
