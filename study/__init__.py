"""The study layer: result files → Figure-3 grid → heat-maps and report.

- `study.results`  — result-file schema (one JSON per finished run), atomic writer, validating reader.
- `study.grid`     — relative-reduction arithmetic and the top/bottom panels (pure, no plotting).
- `study.heatmaps` — Figure-3-style heat-maps as `matplotlib.figure.Figure` objects.
- `study.report`   — `python -m study.report RESULTS_DIR [--out OUT_DIR]` and `rebuild_report()`.

Nothing is imported here so that `import study.results` never pulls in matplotlib.
The schema and the CLI are documented in docs/results-schema.md.
"""
