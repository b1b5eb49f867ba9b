"""HTML building blocks shared by the run report and the comparison page: the page frame and style, tables
that fit a 1280 px window (long cells wrap, numbers rounded; on a phone they scroll sideways), metric headers
with the way they are better (↓ lower, ↑ higher), folded details, and figures whose caption names their
source."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from latentatlas.runs.tables import METRIC_LABELS, fmt_number, key_label, metric_heading
from latentatlas.runs.figures import describe_source, read_source
from latentatlas.runs.store import flatten

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{margin-bottom:.3em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em} .scroll{overflow-x:auto;max-width:100%}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
td{overflow-wrap:anywhere;min-width:4em}
th{background:#f5f5f5;font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
figure{display:inline-block;margin:.5em 1em .5em 0;vertical-align:top;max-width:100%}
figcaption{font-size:.85em;color:#555;max-width:540px} .source{display:block;color:#999;font-size:.9em}
img{image-rendering:pixelated;max-width:100%} .muted{color:#777} code{background:#f5f5f5;padding:0 .2em;
overflow-wrap:anywhere} details{margin:.5em 0} summary{cursor:pointer;color:#245}
.answer{font-size:1.15em;background:#f4f8fc;border-left:4px solid #4a7fb5;padding:.6em .9em;margin:.8em 0}
.tag{display:inline-block;background:#e8eef6;border-radius:3px;padding:0 .5em;margin-right:.3em;font-size:.85em}
.note{font-size:.85em;color:#555;margin:.2em 0} caption{text-align:left;font-weight:600;padding:.2em 0}
"""


def page(title: str, parts: list[str]) -> str:
    """A whole HTML page around ``parts``."""
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{CSS}</style></head>"
            f"<body>{''.join(p for p in parts if p)}</body></html>\n")


def e(value: Any) -> str:
    return html.escape(str(value))


def cell(value: Any) -> str:
    """A table cell: numbers rounded and right-aligned; yes/no for booleans; lists and dicts as short JSON."""
    if isinstance(value, bool):
        return f"<td>{'yes' if value else 'no'}</td>"
    if isinstance(value, (int, float)):
        return f"<td class='num'>{e(fmt_number(value))}</td>"
    if isinstance(value, (list, dict)):
        text = json.dumps(value)
        value = text if len(text) < 120 else text[:117] + "..."
    return f"<td>{e('' if value is None else value)}</td>"


def table(header: list[str], rows: list[list[Any]], *, raw: bool = False) -> str:
    """An HTML table; with ``raw`` the cells are HTML already (links), else values escaped."""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{v}</td>" if raw else cell(v) for v in row) + "</tr>" for row in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def details(summary: str, body: str, *, open_: bool = False) -> str:
    if not body:
        return ""
    return f"<details{' open' if open_ else ''}><summary>{e(summary)}</summary>{body}</details>"


def quantity_table(values: dict[str, Any], *, features: str | None = None, fold_after: int = 16,
                   summary: str = "all numbers") -> str:
    """A quantity/value table of the scalars in ``values`` (human names; lists and dicts left out);
    longer tables fold away."""
    flat = flatten(values) if isinstance(values, dict) else {"value": values}
    rows = [[_quantity_name(k, features), v] for k, v in flat.items() if not isinstance(v, (list, dict))]
    if not rows:
        return ""
    body = table(["quantity", "value"], rows)
    return details(f"{summary} ({len(rows)})", body) if len(rows) > fold_after else body


def _quantity_name(key: str, features: str | None) -> str:
    parts = key.split(".")
    name = metric_heading(parts[-1], features) if parts[-1] in METRIC_LABELS else key_label(parts[-1])
    return " ".join([*parts[:-1], name]) if len(parts) > 1 else name


def protocol_table(protocol: dict[str, Any]) -> str:
    """The entries of a scoring protocol, named for a person."""
    return table(["", "value"], [[key_label(k), v] for k, v in protocol.items()])


def columns_table(entries: dict[str, dict[str, Any]], keys: list[str], *, first: str,
                  features: str | None = None) -> str:
    """One row per entry (a sampler, an interpolator), one column per key present (human names)."""
    keys = [k for k in keys if any(isinstance(v.get(k), (int, float)) for v in entries.values())]
    if not entries or not keys:
        return ""
    return table([first, *[metric_heading(k, features) for k in keys]],
                 [[name, *[v.get(k) for k in keys]] for name, v in entries.items()])


def transposed_table(entries: dict[str, dict[str, Any]], *, features: str | None = None,
                     skip: tuple[str, ...] = ()) -> str:
    """One row per scalar quantity, one column per entry: many quantities of a few entries stay narrow."""
    flat = {name: {k: v for k, v in flatten(values).items() if not isinstance(v, (list, dict))
                   and not k.startswith(skip)} for name, values in entries.items()}
    keys = list(dict.fromkeys(k for values in flat.values() for k in values))
    if not keys:
        return ""
    return table(["quantity", *entries], [[_quantity_name(k, features), *[flat[n].get(k) for n in entries]]
                                          for k in keys])


def figure(folder: Path, name: str, caption: str = "", *, href_prefix: str = "figures/") -> str:
    """An image of ``folder``/``name`` with its caption and its source (from the PNG's own metadata);
    '' when the file is absent."""
    path = folder / name
    if not path.is_file():
        return ""
    source = describe_source(read_source(path))
    return (f"<figure><img src='{e(href_prefix + name)}' alt='{e(caption or name)}'><figcaption>{e(caption or name)}"
            f"{f'<span class=source>{e(source)}</span>' if source else ''}</figcaption></figure>")


def embedded_figure(png: bytes, caption: str, source: str = "") -> str:
    """A figure whose PNG is inside the page (a data: URI), for pages that write no other file."""
    data = base64.b64encode(png).decode("ascii")
    return (f"<figure><img src='data:image/png;base64,{data}' alt='{e(caption)}'><figcaption>{e(caption)}"
            f"{f'<span class=source>{e(source)}</span>' if source else ''}</figcaption></figure>")
