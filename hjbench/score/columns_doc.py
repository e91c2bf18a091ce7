"""The column reference of results/README.md, generated from the metric catalogue.

    python -m hjbench.score.columns_doc        # prints the Markdown table

``tests/test_catalogue.py`` checks that results/README.md holds exactly this table between its
``<!-- columns:begin -->`` and ``<!-- columns:end -->`` markers.
"""

from __future__ import annotations

from . import catalogue

__all__ = ["markdown", "BEGIN", "END"]

BEGIN, END = "<!-- columns:begin -->", "<!-- columns:end -->"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown() -> str:
    """One Markdown table row per catalogue column: column, group, kind, meaning."""
    lines = ["| column | group | kind | meaning |", "|---|---|---|---|"]
    for m in catalogue.CATALOGUE.values():
        if m.stage != "trial":
            continue
        extra = []
        if m.coverage:
            extra.append(f"shown with `{m.coverage}`")
        if m.train:
            extra.append(f"training-set counterpart `{m.train}`")
        meaning = _cell(m.doc or m.text) + (f" ({'; '.join(extra)})" if extra else "")
        lines.append(f"| `{m.column}` | {m.group} | {m.kind} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
