"""Error vs. upstream data size, one line per step budget: the grid's trends at a glance.

One figure per model (and resolution), one subplot per benchmark; x is the dataset size on a
log axis with the grid's tick labels (``1M``, ``5M``, ``13M``), y the seed-averaged top-1 error
in percent. A missing cell is a gap in its line, not a fabricated point.
"""
from __future__ import annotations

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from results.figures import benchmark_subplots, count_labels, figure_key, format_count
from results.grid import GridResult, at_resolution
from results.schema import display_name


def error_lines_figure(grid: GridResult, model: str, resolution: int | None = None) -> Figure:
    """Lines of `model`'s error (%) against data size, one per step budget (fewest steps lightest)."""
    sizes = grid.data_sizes
    fig, axes, side = benchmark_subplots(len(grid.benchmarks), (2.2, 1.6), side=1.4)
    shades = np.linspace(0.35, 1.0, len(grid.steps))  # longer training = darker line
    cmap = colormaps["Blues"]
    for ax, b in zip(axes, grid.benchmarks):
        for shade, s in zip(shades, grid.steps):
            ys = [grid.error(model, b, s, d, resolution) for d in sizes]
            ys = [np.nan if y is None else 100 * y for y in ys]
            if all(np.isnan(ys)):
                continue
            ax.plot(sizes, ys, marker="o", markersize=3, color=cmap(shade), label=f"{format_count(s)} steps")
        ax.set_xscale("log")
        ax.set_xticks(sizes, count_labels(sizes), fontsize=8)
        ax.minorticks_off()
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title(display_name(b), fontsize=10)
        ax.set_xlabel("Dataset size", fontsize=8)
        ax.set_ylabel("top-1 error (%)", fontsize=8)
        ax.grid(alpha=0.3)
    legend = {}  # label -> handle, from whichever subplot has the line
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    if legend:
        fig.legend(legend.values(), legend.keys(), loc="upper left", bbox_to_anchor=(side[0] - 0.01, side[1] + side[3]),
                   fontsize=8, title="Training steps", title_fontsize=8, frameon=False)
    fig.suptitle(f"{model}{at_resolution(resolution)}: OOD error vs. dataset size", fontsize=11)
    return fig


def line_figures(grid: GridResult) -> dict[str, Figure]:
    """``lines_<model>`` (``-res=<r>``) for each model and resolution; empty without benchmarks."""
    if not grid.benchmarks:
        return {}
    return {figure_key("lines", m, r): error_lines_figure(grid, m, r) for r in grid.resolutions for m in grid.models}
