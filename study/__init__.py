"""Orchestration: a study file → upstream runs + cells → result files (the grid itself: `results`).

Launching (``python -m study {list,run,slurm,report,upstream,cell} STUDY.yaml``, docs/study.md):
- `study.definition` — the study YAML: axes (model, data size, steps, seed, resolution), stage configs;
                       `UpstreamRun`, the pre-training that cells with equal upstream settings share.
- `study.layout`     — where everything of an upstream run and a cell lives, from its name.
- `study.overrides`  — what an upstream run / a cell changes in its stage config (a YAML stacked last).
- `study.cell_run`   — one unit: pre-train an upstream run; fine-tune a cell → result file completed.
- `study.claims`     — atomic claims, so no unit runs twice; `study.state` — pending / running / preempted / done / failed.
- `study.runner`     — workers claiming units on this machine, resumable; `study.slurm` — the array jobs.
- `study.cli`        — the command line.

The result files, the grid and the report live in `results` (imported, never the reverse).
"""
