"""A self-contained report.html: inline CSS, figures inlined as base64 PNG, no scripts, no fetches."""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

_CSS = """
:root { --fg:#1a1a1a; --muted:#5a5a5a; --line:#d9d9d9; --ok:#1b7837; --bad:#b2182b; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 1180px; padding: 0 18px 40px; }
header { padding: 14px 0 6px; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.5em; margin: 0.2em 0; } h2 { font-size: 1.25em; margin-top: 1.6em;
     border-bottom: 1px solid var(--line); padding-bottom: 3px; } h3 { font-size: 1.05em; margin: 1.2em 0 0.3em; }
.meta { color: var(--muted); font-size: 0.9em; }
.banner { background: #fff3cd; border: 2px solid #d4a017; color: #5c4300; padding: 10px 14px; margin: 12px 0;
          font-weight: 600; border-radius: 4px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 0.9em; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.held { color: var(--ok); font-weight: 600; } .notheld { color: var(--bad); font-weight: 600; }
.undetermined { color: var(--muted); }
figure { margin: 10px 0 22px; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: var(--muted); font-size: 0.88em; }
.note { color: var(--bad); font-size: 0.9em; }
.scroll { overflow-x: auto; max-width: 100%; }
td.meta { color: var(--muted); font-size: 0.92em; }
details { margin: 6px 0; } summary { cursor: pointer; color: var(--muted); }
nav a { margin-right: 12px; }
code { font-size: 0.92em; background: #f6f6f6; padding: 0 3px; }
"""


@dataclass
class FigureItem:
    """One inlined figure: PNG bytes, a heading and a caption (the SVG sits next to the PNG)."""

    title: str
    png: bytes
    caption: str = ""
    files: str = ""


@dataclass
class Section:
    """A titled part of the report (one dataset / brain), with figures, tables and notes."""

    title: str
    anchor: str
    intro: str = ""
    figures: list[FigureItem] = field(default_factory=list)
    tables: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def esc(value: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(value), quote=True)


def fmt_number(value: Any) -> str:
    """A compact number: 3 significant digits, NaN as an en dash."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return esc(value)
    if math.isnan(v):
        return "–"
    if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:.3g}"


def _held_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td class="undetermined">undetermined</td>'
    if isinstance(value, str):
        low = value.strip().lower()
        flag = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(low)
        if flag is None:
            return f'<td class="undetermined">{esc(value)}</td>'
        value = flag
    return '<td class="held">✓ held</td>' if bool(value) else '<td class="notheld">✗ not held</td>'


def findings_table(findings: pd.DataFrame) -> str:
    """One table per brain: finding, statistic, value with 95% CI, whether it held, and the note.

    A finding whose value is NaN could not be tested in this run (e.g. no robust model among
    the candidates); it is shown as "not testable" rather than as failed.
    """
    parts: list[str] = []
    brains = list(dict.fromkeys(findings["brain"].astype(str))) if "brain" in findings else [""]
    has_note = "note" in findings
    for brain in brains:
        rows = findings[findings["brain"].astype(str) == brain] if brain else findings
        parts.append(f"<h3>Brain: {esc(brain)}</h3>" if brain else "")
        parts.append(f'<div class="scroll"><table class="findings" data-brain="{esc(brain)}"><thead><tr><th>finding</th>'
                     "<th>statistic</th><th>value</th><th>95% CI</th><th>held?</th>"
                     + ("<th>note</th>" if has_note else "") + "</tr></thead><tbody>")
        for _, r in rows.iterrows():
            ci = f"[{fmt_number(r.get('ci_low'))}, {fmt_number(r.get('ci_high'))}]"
            value = r.get("value")
            untestable = isinstance(value, (float, np.floating)) and math.isnan(value)
            held = '<td class="undetermined">not testable</td>' if untestable else _held_cell(r.get("held"))
            note = f'<td class="meta">{esc(r.get("note", ""))}</td>' if has_note else ""
            parts.append(
                f"<tr><td>{esc(r.get('finding', ''))}</td><td>{esc(r.get('statistic', ''))}</td>"
                f'<td class="num">{fmt_number(value)}</td><td class="num">{ci}</td>{held}{note}</tr>'
            )
        parts.append("</tbody></table></div>")
    return "\n".join(parts)


def key_value_table(rows: list[tuple[str, Any]], css_class: str = "kv") -> str:
    """A two-column table of (key, value) rows."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="{css_class}"><tbody>{body}</tbody></table>'


def frame_table(frame: pd.DataFrame, max_rows: int = 60) -> str:
    """A pandas DataFrame as a horizontally scrollable HTML table, numbers formatted compactly."""
    head = "".join(f"<th>{esc(c)}</th>" for c in frame.columns)
    body = []
    for _, row in frame.head(max_rows).iterrows():
        cells = "".join(
            f'<td class="num">{fmt_number(v)}</td>' if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            else f"<td>{esc(v)}</td>"
            for v in row.values
        )
        body.append(f"<tr>{cells}</tr>")
    more = f"<caption>first {max_rows} of {len(frame)} rows</caption>" if len(frame) > max_rows else ""
    return f'<div class="scroll"><table>{more}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _figure_html(item: FigureItem) -> str:
    data = base64.b64encode(item.png).decode("ascii")
    files = f" Files: <code>{esc(item.files)}</code>." if item.files else ""
    return (
        f"<figure><h3>{esc(item.title)}</h3>"
        f'<img alt="{esc(item.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(item.caption)}{files}</figcaption></figure>"
    )


def render_html(
    *,
    title: str,
    subtitle: str,
    simulated: bool,
    simulated_text: str,
    findings: pd.DataFrame | None,
    manifest_html: str,
    sections: list[Section],
    notes: list[str],
) -> str:
    """The whole report page as one HTML string (no external resources, no scripts)."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{esc(title)}</h1><div class=\"meta\">{esc(subtitle)}</div>",
    ]
    if simulated:
        out.append(f'<div class="banner" id="simulated-banner">SIMULATED — {esc(simulated_text)}</div>')
    nav = " ".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    out.append(f'<nav><a href="#findings">Findings</a> <a href="#manifest">Run</a> {nav}</nav></header>')
    out.append('<section id="findings"><h2>Findings</h2>')
    if findings is not None and len(findings):
        out.append(
            "<p class=\"meta\">Each of the paper's findings as measured in this run, with its 95% bootstrap CI, per brain. "
            "A finding that did not hold is reported as such, with its numbers.</p>"
        )
        out.append(findings_table(findings))
    else:
        out.append('<p class="note">This run has no findings table (results.nc lacks /findings).</p>')
    out.append("</section>")
    out.append(f'<section id="manifest"><h2>Run</h2>{manifest_html}</section>')
    for s in sections:
        out.append(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>')
        if s.intro:
            out.append(f'<p class="meta">{esc(s.intro)}</p>')
        out.extend(_figure_html(f) for f in s.figures)
        for heading, table in s.tables:
            out.append(f"<h3>{esc(heading)}</h3>{table}")
        out.extend(f'<p class="note">{esc(n)}</p>' for n in s.notes)
        out.append("</section>")
    if notes:
        out.append('<section id="notes"><h2>Notes</h2>' + "".join(f'<p class="note">{esc(n)}</p>' for n in notes) + "</section>")
    out.append("</body></html>")
    return "\n".join(out)
