"""Figure-3-style heat-maps of a `GridResult`.

Figures are plain `matplotlib.figure.Figure` objects with an Agg canvas attached: no pyplot,
so no global figure registry to leak, no backend switched at import time, and the same
objects can be saved as PNG or handed to TensorBoard's ``SummaryWriter.add_figure``.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from study.grid import GridResult
from study.results import atomic_write_bytes, display_name, safe_name

_UNITS = ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "K"))


def format_count(n: int, digits: int = 3) -> str:
    """Human-readable count with at most `digits` significant digits: 1000 → ``1K``,
    2500 → ``2.5K``, 112_000 → ``112K``, 1_120_000 → ``1.12M``, 13_000_000 → ``13M``,
    400 → ``400``. Picks the largest unit the rounded value reaches (999_999 → ``1M``).
    """
    for unit, suffix in _UNITS:
        v = n / unit
        text = f"{v:.{digits}g}"
        if abs(float(text)) >= 1:
            return f"{text}{suffix}"
    return str(n)


def count_labels(values: Sequence[int]) -> list[str]:
    """`format_count` labels for an axis, with more digits until no two labels collide."""
    for digits in range(3, 10):
        labels = [format_count(v, digits) for v in values]
        if len(set(labels)) == len(labels):
            return labels
    return [str(v) for v in values]


def figure_key(panel: str, model: str) -> str:
    """File-safe figure name: ``top_<model>`` or ``bottom_<A>-vs-<B>`` (for model ``A->B``)."""
    if panel == "bottom" and "->" in model:
        a, b = model.split("->", 1)
        return f"bottom_{safe_name(a)}-vs-{safe_name(b)}"
    return f"{panel}_{safe_name(model)}"


def _matrix(values: dict, panel: str, model: str, bench: str, steps, sizes) -> np.ndarray:
    # (len(steps), len(sizes)); nan where the cell has no row or its reduction is undefined
    # (panel_figure tells the two apart to label the latter "n/a").
    m = np.full((len(steps), len(sizes)), np.nan)
    for i, s in enumerate(steps):
        for j, d in enumerate(sizes):
            v = values.get((panel, model, bench, s, d))
            if v is not None:
                m[i, j] = v
    return m


def _title(grid: GridResult, panel: str, model: str) -> str:
    if panel == "top":
        refs = {grid.references[(model, b)] for b in grid.benchmarks if (model, b) in grid.references}
        if len(refs) == 1:
            s, d = refs.pop()
            ref = f"{format_count(s)} steps, {format_count(d)} images"
        else:
            ref = "its fewest steps and smallest data size"
        return f"{model}: OOD error reduction (%) relative to {ref}"
    a, _, b = model.partition("->")
    return f"{a} \u2192 {b}: OOD error reduction (%) from the smaller to the larger model"


def panel_figure(grid: GridResult, panel: str, model: str, *, cmap: str = "RdBu") -> Figure:
    """One heat-map figure: a subplot per benchmark of `grid.benchmarks` (Figure-3 order),
    steps as rows (fewest at the bottom), data sizes as columns, each cell annotated with its
    reduction (``%.1f``; ``n/a`` when undefined), missing cells blank. One diverging colour
    scale, symmetric around 0 (blue = lower error), is shared by all subplots of the figure.
    """
    values = grid.values()
    steps, sizes, benches = grid.steps, grid.data_sizes, grid.benchmarks
    mats = {b: _matrix(values, panel, model, b, steps, sizes) for b in benches}
    present = {b: {(s, d) for s in steps for d in sizes if (panel, model, b, s, d) in values} for b in benches}
    finite = np.concatenate([m[np.isfinite(m)] for m in mats.values()] or [np.zeros(0)])
    vmax = float(np.abs(finite).max()) if finite.size else 0.0
    if not vmax > 0:
        vmax = 1.0  # all zero or empty: any symmetric range keeps 0 at the centre colour
    norm = Normalize(vmin=-vmax, vmax=vmax)
    cm = colormaps[cmap].with_extremes(bad="white")  # nan (missing) cells drawn blank

    n = max(len(benches), 1)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    cell_w, cell_h = 0.75, 0.45
    fig = Figure(
        figsize=(ncols * (1.5 + cell_w * len(sizes)) + 1.0, nrows * (1.3 + cell_h * len(steps)) + 0.6),
        layout="constrained",
    )
    FigureCanvasAgg(fig)  # attaches itself; savefig/add_figure need no pyplot
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    xlabels, ylabels = count_labels(sizes), count_labels(steps)
    for ax, b in zip(axes, benches):
        m = mats[b]
        ax.imshow(np.ma.masked_invalid(m), origin="lower", cmap=cm, norm=norm, aspect="auto")
        for i, s in enumerate(steps):
            for j, d in enumerate(sizes):
                if (s, d) not in present[b]:
                    continue
                v = m[i, j]
                text = "n/a" if math.isnan(v) else f"{v:.1f}"
                colour = "white" if math.isfinite(v) and abs(v) > 0.6 * vmax else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
        if panel == "top" and (model, b) not in grid.references:
            ax.text(0.5, 0.5, "reference cell\nmissing", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8, color="grey")
        ax.set_title(display_name(b), fontsize=10)
        ax.set_xticks(range(len(sizes)), xlabels, fontsize=8)
        ax.set_yticks(range(len(steps)), ylabels, fontsize=8)
        ax.set_xlabel("Dataset size", fontsize=8)
        ax.set_ylabel("Training steps", fontsize=8)
    for ax in axes[len(benches):]:
        ax.set_visible(False)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cm), ax=list(axes[: max(len(benches), 1)]),
                 label="error reduction (%)", shrink=0.9)
    fig.suptitle(_title(grid, panel, model), fontsize=11)
    return fig


def grid_figures(grid: GridResult, *, cmap: str = "RdBu") -> dict[str, Figure]:
    """One figure per panel: ``top_<model>`` for each model (size order), then
    ``bottom_<A>-vs-<B>`` for each consecutive pair. Empty when the grid has no benchmark.
    """
    if not grid.benchmarks:
        return {}
    return {figure_key(p, m): panel_figure(grid, p, m, cmap=cmap) for p, m in grid.panel_models()}


def save_figures(figs: dict[str, Figure], out_dir: Path, *, dpi: int = 100) -> list[Path]:
    """Save each figure as ``out_dir/<key>.png`` (atomic write); return the paths in `figs` order."""
    out_dir = Path(out_dir)
    paths = []
    for key, fig in figs.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        paths.append(atomic_write_bytes(out_dir / f"{key}.png", buf.getvalue()))
    return paths
