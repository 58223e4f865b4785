#!/usr/bin/env python3
"""Draws the growth benchmark: each figure against the database's size, per backend.

Reads the JSON `cargo bench --bench throughput -- growth` writes (default
`target/growth.json`) and writes one SVG per backend (`docs/img/growth-<backend>.svg`):
one panel per measure, its value at each size (orders seeded), with the empty
database's value × 1.25 (the target's bound) as a dashed line. Standard library only.

    python3 docs/plot_growth.py [target/growth.json] [docs/img]
"""

import json
import sys
from html import escape

# (JSON field, title, higher is better; None: the machine's own, no bound drawn)
MEASURES = [
    ("webhooks_per_sec", "webhooks/s", True),
    ("webhook_ms_p99", "webhook p99 (ms)", False),
    ("checkout_overhead_ms_p50", "checkout overhead p50 (ms)", False),
    ("checkout_overhead_ms_p99", "checkout overhead p99 (ms)", False),
    ("callback_ms_p99", "callback p99 (ms)", False),
    ("status_ms_p99", "status p99 (ms)", False),
    ("cancel_ms_p99", "cancellation p99 (ms)", False),
    ("operator_list_ms_p99", "operator list p99 (ms)", False),
    ("operator_view_ms_p99", "operator view p99 (ms)", False),
    ("pass_db_ms_per_1000_reads", "reconciliation, ms per 1 000 reads", False),
    ("claim_ms_p99", "outbox claim p99 (ms)", False),
    ("service_cpu_us_per_webhook", "service CPU per webhook (µs)", False),
    ("db_cpu_us_per_webhook", "database CPU per webhook (µs)", False),
    ("reference_health_cpu_us", "machine: CPU per GET /health (µs)", None),
    ("reference_db_ms", "machine: database count (ms)", None),
]
COLS, PANEL_W, PANEL_H, PAD = 3, 270, 170, 50
LINE, BOUND = "#2b6cb0", "#c53030"


def value(size, field):
    """A measure at one size; the pass's time per 1 000 reads is derived from its total
    and its reads where the JSON predates that field."""
    if field == "pass_db_ms_per_1000_reads" and field not in size:
        return float(size["pass_db_ms"]) * 1000 / max(int(size["pass_reads"]), 1)
    return float(size[field])


def known(size, field):
    """Whether a size of the JSON gives `field` (or, for the pass per 1 000 reads, what
    it is derived from)."""
    return field in size or field == "pass_db_ms_per_1000_reads"


def num(v):
    """A value as a label: whole numbers from 100 up, three significant digits below."""
    return f"{v:.0f}" if v >= 100 else f"{v:.3g}"


def size_label(n):
    if n >= 1_000_000:
        return f"{n / 1_000_000:g}M"
    if n >= 1_000:
        return f"{n / 1_000:g}k"
    return str(n)


def panel(x0, y0, title, sizes, values, higher_is_better):
    """One measure: its values at each size, and the bound the target allows (none for
    the machine's own reference figures, `higher_is_better` None)."""
    if higher_is_better is None:
        bound = None
    else:
        bound = values[0] / 1.25 if higher_is_better else values[0] * 1.25
    top = max(values + ([bound] if bound is not None else [])) * 1.15 or 1.0
    w, h = PANEL_W - PAD - 10, PANEL_H - 60
    px = lambda i: x0 + PAD + (w * i / max(len(sizes) - 1, 1))
    py = lambda v: y0 + 30 + h - h * v / top
    out = [f'<text x="{x0 + PAD}" y="{y0 + 18}" font-size="12" font-weight="bold">{escape(title)}</text>']
    out.append(f'<line x1="{x0 + PAD}" y1="{y0 + 30 + h}" x2="{x0 + PAD + w}" y2="{y0 + 30 + h}" stroke="#718096"/>')
    out.append(f'<line x1="{x0 + PAD}" y1="{y0 + 30}" x2="{x0 + PAD}" y2="{y0 + 30 + h}" stroke="#718096"/>')
    out.append(f'<text x="{x0 + PAD - 4}" y="{py(top) + 4}" font-size="10" text-anchor="end">{num(top)}</text>')
    out.append(f'<text x="{x0 + PAD - 4}" y="{y0 + 34 + h}" font-size="10" text-anchor="end">0</text>')
    if bound is not None:
        out.append(
            f'<line x1="{x0 + PAD}" y1="{py(bound)}" x2="{x0 + PAD + w}" y2="{py(bound)}" '
            f'stroke="{BOUND}" stroke-dasharray="4 3"/>'
        )
    points = " ".join(f"{px(i)},{py(v)}" for i, v in enumerate(values))
    out.append(f'<polyline points="{points}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    for i, (s, v) in enumerate(zip(sizes, values)):
        out.append(f'<circle cx="{px(i)}" cy="{py(v)}" r="3" fill="{LINE}"/>')
        # The first value's label starts right of the axis (its top label is left of it),
        # the last ends at its point, the others are centred.
        anchor, dx = ("start", 5) if i == 0 else ("end", -5) if i == len(values) - 1 else ("middle", 0)
        out.append(
            f'<text x="{px(i) + dx}" y="{py(v) - 6}" font-size="10" text-anchor="{anchor}">{num(v)}</text>'
        )
        out.append(f'<text x="{px(i)}" y="{y0 + 44 + h}" font-size="10" text-anchor="middle">{size_label(s)}</text>')
    return out


def draw(result):
    sizes = [s["orders"] for s in result["sizes"]]
    # Fields a JSON of an older bench lacks are left out.
    measures = [m for m in MEASURES if all(known(s, m[0]) for s in result["sizes"])]
    rows = (len(measures) + COLS - 1) // COLS
    width, height = COLS * PANEL_W, rows * PANEL_H + 66
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" role="img" aria-label="growth benchmark, {escape(result["backend"])}">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="10" y="22" font-size="14" font-weight="bold">{escape(result["backend"])}: '
        f"each figure against orders in the database</text>",
        '<text x="10" y="40" font-size="11">dashed: 1.25 × the empty database\'s figure; '
        "machine: the same work at every size, no bound</text>",
    ]
    for k, (field, title, better) in enumerate(measures):
        values = [value(s, field) for s in result["sizes"]]
        out += panel((k % COLS) * PANEL_W, 56 + (k // COLS) * PANEL_H, title, sizes, values, better)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "target/growth.json"
    target = sys.argv[2] if len(sys.argv) > 2 else "docs/img"
    with open(source) as f:
        results = json.load(f)
    for result in results:
        path = f"{target}/growth-{result['backend']}.svg"
        with open(path, "w") as f:
            f.write(draw(result))
        print(path)


if __name__ == "__main__":
    main()
