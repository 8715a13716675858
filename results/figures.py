"""What every study figure shares: count labels, figure names, one subplot per benchmark, saving.

Figures are plain `matplotlib.figure.Figure` objects with an Agg canvas attached: no pyplot,
so no global figure registry to leak, no backend switched at import time, and the same
objects can be saved as PNG/SVG or handed to TensorBoard's ``SummaryWriter.add_figure``.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from results.schema import atomic_write_bytes, safe_name

_UNITS = ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "K"))
FORMATS: tuple[str, ...] = ("png", "svg")


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


def new_figure(width: float, height: float) -> Figure:
    """A `Figure` of `width` x `height` inches with its Agg canvas attached (no pyplot)."""
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # attaches itself; savefig/add_figure need no pyplot
    return fig


def figure_key(kind: str, model: str, resolution: int | None = None) -> str:
    """File-safe figure name: ``<kind>_<model>``, ``bottom_<A>-vs-<B>`` for model ``A->B``,
    with ``-res=<r>`` appended on a resolution axis (kinds: top, bottom, errors, lines)."""
    if "->" in model:
        a, b = model.split("->", 1)
        key = f"{kind}_{safe_name(a)}-vs-{safe_name(b)}"
    else:
        key = f"{kind}_{safe_name(model)}"
    return key if resolution is None else f"{key}-res={int(resolution)}"


# Fixed margins in inches instead of a layout engine: constrained layout measured every tick
# label of every subplot on every save and tripled the time a report takes.
_LEFT, _BOTTOM, _TOP = 0.75, 0.55, 0.75
_GAP_W, _GAP_H = 0.95, 0.85  # between subplots: the next one's tick and axis labels, titles
_CAPTION_LINE, _CAPTION_MARGIN = 0.15, 0.1  # inches per caption line (fontsize 7), and around the caption


def benchmark_subplots(n: int, plot_size: tuple[float, float], side: float = 1.2,
                       caption_lines: int = 0) -> tuple[Figure, list[Axes], list[float]]:
    """A figure with one subplot per benchmark (at most four per row).

    `plot_size` is (width, height) in inches of one subplot's plotting area; `side` inches are
    kept free on the right, returned as a ``[left, bottom, width, height]`` rectangle in figure
    fractions for a colour bar or a legend; room for `caption_lines` lines of `add_caption` is
    kept below the subplots' axis labels.
    """
    n = max(n, 1)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    w, h = plot_size
    bottom = _BOTTOM + caption_height(caption_lines)
    width = _LEFT + ncols * w + (ncols - 1) * _GAP_W + side
    height = bottom + nrows * h + (nrows - 1) * _GAP_H + _TOP
    fig = new_figure(width, height)
    grid = fig.add_gridspec(nrows, ncols, left=_LEFT / width, right=(width - side) / width, bottom=bottom / height,
                            top=(height - _TOP) / height, wspace=_GAP_W / w, hspace=_GAP_H / h)
    axes = [fig.add_subplot(grid[i // ncols, i % ncols]) for i in range(n)]
    side_rect = [(width - side + 0.3) / width, bottom / height, 0.18 / width, (height - bottom - _TOP) / height]
    return fig, axes, side_rect


def caption_height(lines: int) -> float:
    """Inches `add_caption` needs for `lines` lines (0 for none)."""
    return _CAPTION_MARGIN + _CAPTION_LINE * lines if lines else 0.0


def add_caption(fig: Figure, lines: Sequence[str]) -> None:
    """Write `lines` (fontsize 7, one per line) at the bottom left of a figure that keeps
    `caption_height` free below its axes (`benchmark_subplots` with ``caption_lines=len(lines)``);
    keep them short (~50 characters): a one-benchmark figure is about 3.5 inches wide."""
    height = fig.get_figheight()
    for k, line in enumerate(reversed(lines)):
        fig.text(0.01, (_CAPTION_MARGIN / 2 + k * _CAPTION_LINE) / height, line, fontsize=7, ha="left", va="bottom")


def save_figures(figs: dict[str, Figure], out_dir: Path, *, dpi: int = 100,
                 formats: Sequence[str] = ("png",)) -> list[Path]:
    """Save each figure as ``out_dir/<key>.<format>`` (atomic writes); return the paths,
    figure by figure, formats in the given order."""
    out_dir = Path(out_dir)
    paths = []
    for key, fig in figs.items():
        for fmt in formats:
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=dpi)
            paths.append(atomic_write_bytes(out_dir / f"{key}.{fmt}", buf.getvalue()))
    return paths
