"""Import cost, in a fresh interpreter each time (docs/method.md, convention C7: ``import hjbench`` is cheap)."""

from __future__ import annotations


class Import:
    version = "1"
    timeout = 60
    repeat = (2, 4, 10.0)
    number = 1

    def timeraw_import_hjbench(self):
        """``import hjbench`` alone: no torch device set-up, no JAX, no plotting."""
        return "import hjbench"

    def timeraw_import_registries(self):
        """Import the method and prior registries (torch included) and load the plug-ins."""
        return "from hjbench import methods, priors; methods.names(); priors.names()"
