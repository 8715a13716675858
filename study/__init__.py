"""The study layer: a study file → cells run upstream → downstream → result files → Figure-3 grid.

Launching (``python -m study {list,run,slurm,report,upstream,cell} STUDY.yaml``, docs/study.md):
- `study.definition` — the study YAML: axes (model, data size, steps, seed, resolution), stage configs;
                       `UpstreamRun`, the pre-training that cells with equal upstream settings share.
- `study.layout`     — where everything of an upstream run and a cell lives, from its name.
- `study.overrides`  — what an upstream run / a cell changes in its stage config (a YAML stacked last).
- `study.cell_run`   — one unit: pre-train an upstream run; fine-tune a cell → result file completed.
- `study.claims`     — atomic claims, so no unit runs twice; `study.state` — pending / running / preempted / done / failed.
- `study.runner`     — workers claiming units on this machine, resumable; `study.slurm` — the array jobs.
- `study.cli`        — the command line.

Reporting (docs/results-schema.md):
- `study.results`  — result-file schema (one JSON per finished run), atomic writer, validating reader.
- `study.grid`     — relative-reduction arithmetic and the top/bottom panels (pure, no plotting).
- `study.figures`, `study.heatmaps`, `study.lineplots` — the figures; `study.tables` — errors.csv, Markdown.
- `study.report`   — `python -m study.report RESULTS_DIR [--out OUT_DIR]` and `rebuild_report()`.

Nothing is imported here so that `import study.results` never pulls in matplotlib.
"""
