#!/usr/bin/env python3
"""Draws the throughput benchmark's figures: the service beside its ceiling, per backend.

Reads the JSON `cargo bench --bench throughput` writes (default
`target/throughput.json`) and writes an SVG bar chart (default
`docs/img/benchmarks.svg`). Standard library only: no plotting package to install.

    python3 docs/plot_benchmarks.py [target/throughput.json] [docs/img/benchmarks.svg]
"""

import json
import sys
from html import escape

SERVICE = "#2b6cb0"
CEILING = "#a0aec0"
PGBENCH = "#d69e2e"


def bars(result):
    """The bars of one backend: (group label, [(series, value, colour)])."""
    w = result["webhooks_per_sec"]
    n = result["notifications_per_sec"]
    webhooks = [
        ("service", w["service"], SERVICE),
        ("ceiling (same statements)", w["ceiling"], CEILING),
    ]
    if result.get("pgbench_tps"):
        webhooks.append(("pgbench", result["pgbench_tps"], PGBENCH))
    notifications = [
        ("service", n["service"], SERVICE),
        ("ceiling (least loop)", n["ceiling"], CEILING),
    ]
    return [("webhooks/s", webhooks), ("notifications/s", notifications)]


def draw(doc):
    results = doc["results"]
    panel_w, panel_h, top, bottom, left = 330, 300, 60, 70, 60
    width = max(left + panel_w * len(results) + 20, 720)
    height = top + panel_h + bottom
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">'
        f"cafe24-komoju: the service beside its ceiling, same run</text>",
        f'<text x="{left}" y="40" fill="#4a5568">{escape(str(doc.get("cores", "?")))} cores '
        f'({escape(doc.get("cpu", ""))}), {doc.get("orders", "?")} per measurement, '
        f'{doc.get("concurrency", "?")} concurrent senders</text>',
    ]
    for i, result in enumerate(results):
        x0 = left + i * panel_w
        groups = bars(result)
        peak = max(v for _, series in groups for _, v, _ in series) * 1.15
        scale = panel_h / peak
        base = top + panel_h
        out.append(
            f'<text x="{x0 + panel_w / 2 - 20}" y="{top - 4}" font-weight="bold" '
            f'text-anchor="middle">{escape(result["backend"])}</text>'
        )
        out.append(
            f'<line x1="{x0}" y1="{base}" x2="{x0 + panel_w - 40}" y2="{base}" stroke="#2d3748"/>'
        )
        gx = x0 + 10
        for label, series in groups:
            bar_w = 34
            for name, value, colour in series:
                h = value * scale
                out.append(
                    f'<rect x="{gx}" y="{base - h:.1f}" width="{bar_w}" height="{h:.1f}" '
                    f'fill="{colour}"><title>{escape(name)}: {value:.0f}</title></rect>'
                )
                out.append(
                    f'<text x="{gx + bar_w / 2}" y="{base - h - 4:.1f}" text-anchor="middle" '
                    f'font-size="11">{value:.0f}</text>'
                )
                gx += bar_w + 4
            service, ceiling = series[0][1], series[1][1]
            group_w = len(series) * (bar_w + 4)
            out.append(
                f'<text x="{gx - group_w / 2 - 2}" y="{base + 16}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
            out.append(
                f'<text x="{gx - group_w / 2 - 2}" y="{base + 31}" text-anchor="middle" '
                f'fill="#4a5568">{service / ceiling * 100:.0f} % of ceiling</text>'
            )
            gx += 24
    ly = height - 16
    lx = left
    for name, colour in [
        ("service, over HTTP", SERVICE),
        ("ceiling: same work, same database, same run", CEILING),
        ("pgbench: same transaction", PGBENCH),
    ]:
        out.append(f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{lx + 16}" y="{ly}">{escape(name)}</text>')
        lx += 16 + 6.5 * len(name) + 14
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "target/throughput.json"
    dst = sys.argv[2] if len(sys.argv) > 2 else "docs/img/benchmarks.svg"
    with open(src, encoding="utf-8") as f:
        doc = json.load(f)
    with open(dst, "w", encoding="utf-8") as f:
        f.write(draw(doc))
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
