"""Renders recorded dashboard data as PNG images laid out like the Grafana dashboards.

Grafana cannot be installed on the machines hookd is built on, so the images in docs/ are drawn
with matplotlib from the same PromQL results a Grafana would show: the panel titles, layout
(gridPos), units and legends come from grafana/dashboards/*.json, the data from a real Prometheus
(see http/tests/e2e/monitoring.rs and scripts/dashboard-images).

usage: render_dashboards.py RECORD_DIR OUTPUT_DIR
"""
import json
import os
import re
import sys
from collections import OrderedDict
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#705da0"]
UNITS = {"reqps": "/s", "ops": "/s", "s": "s", "percentunit": "", "short": ""}


def legend(template, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or "value"


def formatted(value, unit):
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"
    return f"{value:,.1f}{UNITS.get(unit, '')}"


def render(board, out):
    panels = OrderedDict()
    for query in board["queries"]:
        panels.setdefault(query["panel"] + json.dumps(query["grid"]), []).append(query)
    rows = max(q["grid"]["y"] + q["grid"]["h"] for q in board["queries"])
    # Sizes in inches: a Grafana grid unit's height, the figure's title band and margins.
    fig_w, unit_h, title_h, pad = 20.0, 0.42, 0.7, 0.15
    fig_h = title_h + rows * unit_h + pad
    fig = plt.figure(figsize=(fig_w, fig_h), facecolor=BACKGROUND)
    fig.suptitle(board["title"], color=TEXT, x=0.01, y=1 - 0.25 / fig_h, ha="left", fontsize=15)
    for queries in panels.values():
        grid, first = queries[0]["grid"], queries[0]
        # The panel's box, then the plot inside it: room for its title above, tick labels
        # below and the axis label on the left.
        box_left = grid["x"] / 24 * fig_w
        box_top = title_h + grid["y"] * unit_h
        box_w, box_h = grid["w"] / 24 * fig_w, grid["h"] * unit_h
        left, right = box_left + 0.6, box_left + box_w - 0.15
        top, bottom = box_top + 0.35, box_top + box_h - 0.35
        ax = fig.add_axes([left / fig_w, 1 - bottom / fig_h, (right - left) / fig_w,
                           (bottom - top) / fig_h])
        ax.set_facecolor(PANEL)
        ax.set_title(first["panel"], color=TEXT, fontsize=10, loc="left")
        for spine in ax.spines.values():
            spine.set_color(GRID)
        ax.tick_params(colors=TEXT, labelsize=7)
        ax.grid(color=GRID, linewidth=0.5)
        colour = 0
        for query in queries:
            for series in query["series"]:
                points = [(datetime.fromtimestamp(t), float(v)) for t, v in series["values"]]
                points = [(t, v) for t, v in points if v == v]  # NaN: no data in that step
                if not points:
                    continue
                times, values = zip(*points)
                if first["unit"] == "percentunit":
                    values = [v * 100 for v in values]
                ax.plot(times, values, color=PALETTE[colour % len(PALETTE)], linewidth=1.2,
                        label=legend(query["legend"], series["metric"]))
                if first["kind"] == "stat":
                    ax.fill_between(times, values, color=PALETTE[colour % len(PALETTE)], alpha=0.15)
                    last = series["values"][-1][1]
                    ax.text(0.98, 0.9, formatted(float(last), first["unit"]), transform=ax.transAxes,
                            ha="right", va="top", color=PALETTE[0], fontsize=16, weight="bold")
                colour += 1
        locator = mdates.AutoDateLocator(maxticks=8 if grid["w"] > 6 else 4)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
        if first["unit"] in ("reqps", "ops"):
            ax.set_ylabel("per second", color=TEXT, fontsize=7)
        elif first["unit"] == "s":
            ax.set_ylabel("seconds", color=TEXT, fontsize=7)
        elif first["unit"] == "percentunit":
            ax.set_ylabel("%", color=TEXT, fontsize=7)
        if first["kind"] != "stat" and colour:
            ax.legend(loc="upper left", fontsize=7, facecolor=PANEL, edgecolor=GRID,
                      labelcolor=TEXT, ncol=min(colour, 4))
    fig.savefig(out, dpi=80, facecolor=BACKGROUND)
    plt.close(fig)


def main():
    records, output = sys.argv[1], sys.argv[2]
    os.makedirs(output, exist_ok=True)
    for name in sorted(os.listdir(records)):
        board = json.load(open(os.path.join(records, name)))
        out = os.path.join(output, "dashboard-" + name.removesuffix(".json").removeprefix("hookd-") + ".png")
        render(board, out)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
