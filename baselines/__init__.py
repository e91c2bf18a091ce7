"""Baseline learners for hjbench, packaged as a plug-in (docs/method.md section 5).

hjbench discovers this package through the entry point ``hjbench.methods = baselines:register``
declared in pyproject.toml, exactly as a third-party package would plug in its own methods.
Run from ``PYTHONPATH`` without installing, set ``HJBENCH_PLUGINS=baselines`` instead.

Adding a baseline is one new module in this folder: :func:`register` imports every module of
the package (found by scanning, no list to edit), and each module registers its methods.
"""

from __future__ import annotations


def register() -> None:
    """Import every module of this package; each registers its methods into ``hjbench.methods``.

    A module that fails to import is reported in one warning line naming it; the others still
    register.
    """
    import importlib
    import pkgutil
    import warnings

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{__name__}.{info.name}")
        except Exception as exc:  # one broken baseline must not hide the others
            warnings.warn(f"baselines: plug-in module {info.name!r} failed to import and is not registered: "
                          f"{type(exc).__name__}: {exc}", stacklevel=2)
