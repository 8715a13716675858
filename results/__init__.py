"""Results: one result file per finished run → the Figure-3 grid, figures and tables (docs/results-schema.md).

- `results.schema`  — result-file schema (one JSON per finished run), atomic writer, validating reader.
- `results.grid`    — relative-reduction arithmetic and the top/bottom panels (pure, no plotting).
- `results.outcomes` — the per-example outcomes sidecar beside each result (what intervals resample).
- `results.bootstrap` — paired bootstrap intervals of every reduction; `results.correlations` — rank
  correlations between benchmarks (and clean error) across a study's cells, with intervals.
- `results.parity` — our top-1 beside imagenet-testbed's published BiT-M numbers.
- `results.figures`, `results.heatmaps`, `results.lineplots` — the figures; `results.tables` — errors.csv, Markdown.
- `results.report`  — `python -m results.report RESULTS_DIR [--out OUT_DIR]` and `rebuild_report()`.

Nothing is imported here so that `import results.schema` never pulls in matplotlib.
"""
