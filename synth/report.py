"""Result tables: a list of flat dicts rendered as a markdown table."""
from __future__ import annotations

from typing import Any

__all__ = ["results_table_markdown"]

_MISSING = "—"


def results_table_markdown(rows: list[dict[str, Any]]) -> str:
    """A markdown table of ``rows``: one column per key, in first-seen order; None shows as "—".

    Floats of 100 or more get one decimal and smaller ones four significant digits, so that
    Fmax and ratios stay readable.
    """
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    if not columns:
        return ""
    lines = ["| " + " | ".join(_escape(str(c)) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    """One table cell."""
    if value is None:
        return _MISSING
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 100 else f"{value:.4g}"
    return _escape(str(value))


def _escape(text: str) -> str:
    """``text`` safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
