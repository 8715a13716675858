"""Figure-3-style heat-maps of a `GridResult`: relative reductions, and absolute errors.

Every heat-map figure is one subplot per benchmark (Figure-3 order), training steps as rows
(fewest at the bottom, as in the paper), dataset sizes as columns with ``1M``/``5M``/``13M``
tick labels, each cell annotated, missing cells blank, one colour scale shared by the
figure's subplots. When the grid carries confidence intervals, a reduction cell whose interval
contains 0 is hatched (``///``) and a caption under the subplots says so.

`correlation_figures` draws the benchmark-by-benchmark rank correlations of
`results.correlations` as one matrix per method.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from results.correlations import METHODS, CorrelationResult, correlation_text, variable_name
from results.figures import add_caption, benchmark_subplots, caption_height, count_labels, figure_key, format_count, new_figure
from results.grid import GridResult, at_resolution
from results.schema import display_name

HATCH = "///"  # marks a reduction whose interval contains 0


def _matrix(grid: GridResult, value) -> np.ndarray:
    # (len(steps), len(sizes)); nan where value(steps, size) is None or undefined
    m = np.full((len(grid.steps), len(grid.data_sizes)), np.nan)
    for i, s in enumerate(grid.steps):
        for j, d in enumerate(grid.data_sizes):
            v = value(s, d)
            if v is not None:
                m[i, j] = v
    return m


def _heatmap(grid: GridResult, mats: dict[str, np.ndarray], present: dict[str, set], *, norm: Normalize,
             cmap: str, dark: Callable[[float], bool], title: str, colour_label: str, notes: dict[str, str],
             subtitles: dict[str, str] | None = None, hatched: dict[str, set] | None = None,
             caption: list[str] | None = None) -> Figure:
    """The shared drawing: `mats` per benchmark, annotated ``%.1f`` where present; `dark(norm(v))`
    says where the colour is dark enough for white text; `notes` are drawn across a subplot,
    `subtitles` added under a subplot's benchmark name; the (steps, size) cells in `hatched`
    get a `HATCH` overlay, and `caption` lines go under the subplots."""
    subtitles, hatched, caption = subtitles or {}, hatched or {}, caption or []
    steps, sizes = grid.steps, grid.data_sizes
    fig, axes, side = benchmark_subplots(len(mats), (0.3 + 0.6 * len(sizes), 0.2 + 0.4 * len(steps)),
                                         caption_lines=len(caption))
    cm = colormaps[cmap].with_extremes(bad="white")  # nan (missing) cells drawn blank
    xlabels, ylabels = count_labels(sizes), count_labels(steps)
    for ax, (b, m) in zip(axes, mats.items()):
        ax.imshow(np.ma.masked_invalid(m), origin="lower", cmap=cm, norm=norm, aspect="auto")
        for i, s in enumerate(steps):
            for j, d in enumerate(sizes):
                if (s, d) not in present[b]:
                    continue
                v = m[i, j]
                white = math.isfinite(v) and dark(float(norm(v)))
                ax.text(j, i, "n/a" if math.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=8,
                        color="white" if white else "black")
                if (s, d) in hatched.get(b, ()):
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch=HATCH, edgecolor="0.4", linewidth=0))
        if b in notes:
            ax.text(0.5, 0.5, notes[b], ha="center", va="center", transform=ax.transAxes, fontsize=8, color="grey")
        ax.set_title(display_name(b) + (f"\n{subtitles[b]}" if b in subtitles else ""), fontsize=10 if b not in subtitles else 8)
        ax.set_xticks(range(len(sizes)), xlabels, fontsize=8)
        ax.set_yticks(range(len(steps)), ylabels, fontsize=8)
        ax.set_xlabel("Dataset size", fontsize=8)
        ax.set_ylabel("Training steps", fontsize=8)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cm), cax=fig.add_axes(side), label=colour_label)
    fig.suptitle(title, fontsize=11, wrap=True)  # wrapped at the figure's edges rather than cut
    add_caption(fig, caption)
    return fig


def _cell_label(cell: tuple[int, int]) -> str:
    return f"{format_count(cell[0])} steps, {format_count(cell[1])} images"


def _reduction_title(grid: GridResult, panel: str, model: str, resolution: int | None) -> str:
    """The figure's title; a top panel's names its reference cell, and says FALLBACK when its
    benchmarks share one fallback reference (mixed references: the subplot titles say which)."""
    at = at_resolution(resolution)
    if panel == "top":
        expected = grid.reference_cell
        refs = {grid.references[(model, b, resolution)] for b in grid.benchmarks if (model, b, resolution) in grid.references}
        if refs == {expected} or not refs:
            ref = _cell_label(expected) if expected else "its fewest steps and smallest data size"
        elif len(refs) == 1:  # a second line: the figure is often narrower than the sentence
            ref = f"\nFALLBACK {_cell_label(refs.pop())} ({_cell_label(expected)}: no result)"
        else:
            ref = f"{_cell_label(expected)};\nFALLBACK references in the subplot titles"
        return f"{model}{at}: OOD error reduction (%) relative to {ref}"
    a, _, b = model.partition("->")
    return f"{a} \u2192 {b}{at}: OOD error reduction (%) from the smaller to the larger model"


def panel_figure(grid: GridResult, panel: str, model: str, resolution: int | None = None, *, cmap: str = "RdBu") -> Figure:
    """One reduction heat-map (a Figure-3 panel): cells annotated ``%.1f`` (``n/a`` when the
    reduction is undefined); a diverging colour scale symmetric around 0 (blue = lower error
    than the reference) shared by the subplots. A top panel names its reference cell in the
    title; a subplot built against a fallback reference names it under the benchmark, and one
    refused for lack of its reference cell names the missing cell.
    """
    values = grid.values()
    mats, present = {}, {}
    for b in grid.benchmarks:
        mats[b] = _matrix(grid, lambda s, d: values.get((panel, model, b, s, d, resolution)))
        present[b] = {(s, d) for s in grid.steps for d in grid.data_sizes if (panel, model, b, s, d, resolution) in values}
    finite = np.concatenate([m[np.isfinite(m)] for m in mats.values()] or [np.zeros(0)])
    vmax = float(np.abs(finite).max()) if finite.size else 0.0
    if not vmax > 0:
        vmax = 1.0  # all zero or empty: any symmetric range keeps 0 at the centre colour
    notes, subtitles = {}, {}
    if panel == "top":
        expected = grid.reference_cell
        fallbacks = grid.fallbacks()
        for b in grid.benchmarks:
            if (model, b, resolution) not in grid.references:
                notes[b] = f"reference cell\n{format_count(expected[0])} steps,\n{format_count(expected[1])} images\nmissing"
            elif (model, b, resolution) in fallbacks:
                subtitles[b] = f"vs. FALLBACK {_cell_label(fallbacks[(model, b, resolution)])}"
    hatched, caption = _interval_marks(grid, panel, model, resolution)
    # RdBu is dark at both ends: |v| above 60 % of the range
    return _heatmap(grid, mats, present, norm=Normalize(-vmax, vmax), cmap=cmap, dark=lambda x: abs(x - 0.5) > 0.3,
                    title=_reduction_title(grid, panel, model, resolution), colour_label="error reduction (%)", notes=notes,
                    subtitles=subtitles, hatched=hatched, caption=caption)


def _interval_marks(grid: GridResult, panel: str, model: str, resolution: int | None) -> tuple[dict[str, set], list[str]]:
    """Per benchmark, the (steps, size) cells of one panel whose interval contains 0 (the top
    panel's reference itself, [0, 0] by definition, is not marked), and the caption saying what
    the hatch means and how many cells have no interval; nothing when the grid has no intervals."""
    if grid.intervals is None:
        return {}, []
    hatched: dict[str, set] = {}
    without = 0
    for r in grid.rows:
        if (r.panel, r.model, r.resolution) != (panel, model, resolution):
            continue
        if r.ci_low is None:
            without += 1
        elif r.ci_low <= 0 <= r.ci_high and not r.is_reference:
            hatched.setdefault(r.benchmark, set()).add((r.steps, r.data_size))
    caption = [f"{HATCH}: the interval contains 0", f"interval: {grid.intervals}"]
    if without:
        caption.append(f"{without} cell(s) without an interval (see the notes)")
    return hatched, caption


def error_figure(grid: GridResult, model: str, resolution: int | None = None, *, cmap: str = "viridis") -> Figure:
    """Absolute top-1 error (%) of every cell of one model, seed-averaged, one colour scale
    from the figure's lowest to its highest error (dark = low error)."""
    mats, present = {}, {}
    for b in grid.benchmarks:
        mats[b] = _matrix(grid, lambda s, d: None if (e := grid.error(model, b, s, d, resolution)) is None else 100 * e)
        present[b] = {(s, d) for s in grid.steps for d in grid.data_sizes if grid.error(model, b, s, d, resolution) is not None}
    finite = np.concatenate([m[np.isfinite(m)] for m in mats.values()] or [np.zeros(0)])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 100.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    # viridis is dark at its low end only
    return _heatmap(grid, mats, present, norm=Normalize(lo, hi), cmap=cmap, dark=lambda x: x < 0.35,
                    title=f"{model}{at_resolution(resolution)}: OOD top-1 error (%)", colour_label="top-1 error (%)", notes={})


def grid_figures(grid: GridResult, *, cmap: str = "RdBu") -> dict[str, Figure]:
    """One reduction figure per panel: ``top_<model>`` for each model (size order), then
    ``bottom_<A>-vs-<B>`` for each consecutive pair (``-res=<r>`` per resolution value).
    Empty when the grid has no benchmark.
    """
    if not grid.benchmarks:
        return {}
    return {figure_key(p, m, r): panel_figure(grid, p, m, r, cmap=cmap) for p, m, r in grid.panel_models()}


def error_figures(grid: GridResult) -> dict[str, Figure]:
    """One absolute-error figure per model (and resolution): ``errors_<model>``."""
    if not grid.benchmarks:
        return {}
    return {figure_key("errors", m, r): error_figure(grid, m, r) for r in grid.resolutions for m in grid.models}


def correlation_figures(result: CorrelationResult, *, cmap: str = "RdBu") -> dict[str, Figure]:
    """One figure per method, ``correlations_<method>``: the variables (clean ImageNet first,
    then the benchmarks) on both axes, each pair's coefficient as colour on a fixed -1..1 scale
    and as text with its interval below it (``n/a`` when undefined); the diagonal is blank.
    Empty when there is no pair."""
    if not result.rows:
        return {}
    names = [variable_name(v) for v in result.variables]
    k = len(names)
    cm = colormaps[cmap].with_extremes(bad="white")
    norm = Normalize(-1.0, 1.0)
    out = {}
    for method in METHODS:
        pairs = result.matrix(method)
        m = np.full((k, k), np.nan)
        for i, a in enumerate(result.variables):
            for j, b in enumerate(result.variables):
                if (a, b) in pairs and i != j:
                    m[i, j] = pairs[(a, b)].rho
        caption = [f"[low, high]: {result.intervals}"] if result.intervals else []
        # fixed margins (inches): names left and, turned 45 degrees, below the matrix; colour bar right
        left, bottom, plot, right, top = 1.3, 1.0 + caption_height(len(caption)), 0.75 * k, 1.2, 0.7
        fig = new_figure(left + plot + right, bottom + plot + top)
        w, h = fig.get_size_inches()
        ax = fig.add_axes([left / w, bottom / h, plot / w, plot / h])
        ax.imshow(np.ma.masked_invalid(m), cmap=cm, norm=norm, aspect="auto")
        for i, a in enumerate(result.variables):
            for j, b in enumerate(result.variables):
                if i != j and (a, b) in pairs:
                    v = m[i, j]
                    white = math.isfinite(v) and abs(v) > 0.6
                    ax.text(j, i, correlation_text(pairs[(a, b)], "\n"), ha="center", va="center", fontsize=6,
                            color="white" if white else "black")
        ax.set_xticks(range(k), names, fontsize=7, rotation=45, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(k), names, fontsize=7)
        bar = fig.add_axes([(left + plot + 0.3) / w, bottom / h, 0.15 / w, plot / h])
        fig.colorbar(ScalarMappable(norm=norm, cmap=cm), cax=bar, label=f"{method.capitalize()} coefficient")
        fig.suptitle(f"{method.capitalize()} rank correlation of the errors over {len(result.cells)} cells", fontsize=10,
                     wrap=True)
        add_caption(fig, caption)
        out[f"correlations_{method}"] = fig
    return out
