"""Command-line latency in a fresh process: ``hjbench --help`` must stay well under a second.

``hjbench.cli`` imports neither torch nor pandas to show help (tests/test_cli.py checks the
imports; this measures the time).
"""

from __future__ import annotations

import subprocess
import sys


class CommandLine:
    version = "1"
    timeout = 60
    repeat = (2, 5, 20.0)
    number = 1

    def _run(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "hjbench", *args], check=True, capture_output=True, timeout=60)

    def time_help(self):
        """``python -m hjbench --help``: interpreter start, typer, the command tree."""
        self._run("--help")

    def time_run_help(self):
        """``python -m hjbench run -h``: one command's help with its epilog."""
        self._run("run", "-h")

    def time_version(self):
        self._run("--version")

    def timeraw_import_cli(self):
        """Import of the CLI module alone (what every command pays before its own work)."""
        return "import hjbench.cli"
