"""The study layer: a study file → cells run upstream → downstream → result files → Figure-3 grid.

Launching (``python -m study {list,run,slurm,report,cell} STUDY.yaml``, docs/study.md):
- `study.definition` — the study YAML: axes (model, data size, steps, seed, resolution), stage configs.
- `study.layout`     — where everything of a cell lives, from its name.
- `study.overrides`  — what a cell changes in each stage config (a YAML stacked last).
- `study.cell_run`   — one cell: upstream → downstream → result file completed with config, seeds, timings.
- `study.state`      — pending / running / done / failed.
- `study.runner`     — the pending cells on this machine, resumable; `study.slurm` — an array job.
- `study.cli`        — the command line.

Reporting (docs/results-schema.md):
- `study.results`  — result-file schema (one JSON per finished run), atomic writer, validating reader.
- `study.grid`     — relative-reduction arithmetic and the top/bottom panels (pure, no plotting).
- `study.figures`, `study.heatmaps`, `study.lineplots` — the figures; `study.tables` — errors.csv, Markdown.
- `study.report`   — `python -m study.report RESULTS_DIR [--out OUT_DIR]` and `rebuild_report()`.

Nothing is imported here so that `import study.results` never pulls in matplotlib.
"""
