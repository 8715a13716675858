"""A SLURM array job for a study: one array task per cell, each upstream → downstream → evaluation.

The script names its cells in a bash array and each task runs
``srun <python> -m study cell <study.yaml> <cell>`` (the same code as a local run, so state
markers, logs and result files are the same). It is written, never submitted: the caller
prints the ``sbatch`` line. Resources come from the study's ``slurm:`` mapping, one
``#SBATCH --<key>=<value>`` each (``ntasks_per_node`` → ``--ntasks-per-node``); ``max_parallel``
throttles the array (``--array=0-N%K``) and ``setup`` lines run before the cell (``module load ...``).
An array job has one set of resources, so models whose ``slurm.per_model`` options differ get
a script each (``<name>-<model>.sbatch``).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Sequence

from datamodules.files import atomic_write_text
from study.definition import Cell, StudyDefinition
from study.results import safe_name


def array_spec(n_cells: int, max_parallel: int | None = None) -> str:
    """``0-<n-1>`` (``%K`` appended to run at most K tasks at once)."""
    if n_cells < 1:
        raise ValueError("a SLURM array needs at least one cell")
    spec = f"0-{n_cells - 1}"
    return f"{spec}%{max_parallel}" if max_parallel else spec


def slurm_jobs(study: StudyDefinition, cells: Sequence[Cell]) -> list[tuple[str, dict, list[Cell]]]:
    """``(script stem, sbatch options, cells)`` per array job: cells grouped by their models'
    options, in cell order; one job is ``<name>``, several are ``<name>-<first model>``."""
    groups: list[tuple[dict, list[Cell]]] = []
    for cell in cells:
        options = study.slurm_options(cell.model)
        for known, members in groups:
            if known == options:
                members.append(cell)
                break
        else:
            groups.append((options, [cell]))
    if len(groups) == 1:
        return [(study.name, groups[0][0], groups[0][1])]
    return [(f"{study.name}-{safe_name(members[0].model)}", options, members) for options, members in groups]


def slurm_script(study: StudyDefinition, cells: Sequence[Cell], options: dict, *, config_path: Path,
                 repo_root: Path, python: str = sys.executable) -> str:
    """The text of one array job for `cells` (one task each, in the given order) with `options`."""
    runs = Path(study.runs_dir)
    if not runs.is_absolute():
        runs = repo_root / runs  # --output is read by slurmd, which does not start in the repository
    sbatch = {k: v for k, v in options.items() if k not in ("setup", "max_parallel")}
    lines = [
        "#!/bin/bash",
        f"# Study {study.name} ({config_path}): {len(cells)} cell(s), one array task each.",
        "# Written by `python -m study slurm`; submit with sbatch. Each task: upstream -> downstream -> evaluation.",
        f"#SBATCH --job-name={sbatch.pop('job_name', study.name)}",
        f"#SBATCH --array={array_spec(len(cells), options.get('max_parallel'))}",
        f"#SBATCH --output={runs / 'logs' / 'slurm-%A_%a.out'}",
        *(f"#SBATCH --{key.replace('_', '-')}={value}" for key, value in sbatch.items()),
        "set -euo pipefail",
        f"cd {shlex.quote(str(repo_root))}",
        *options.get("setup", []),
        "CELLS=(",
        *(f"  {shlex.quote(c.name)}" for c in cells),
        ")",
        'CELL="${CELLS[$SLURM_ARRAY_TASK_ID]}"',
        f'echo "task $SLURM_ARRAY_TASK_ID: cell $CELL (log: {runs / "logs"}/$CELL.log)"',
        f"srun {shlex.quote(python)} -m study cell {shlex.quote(str(config_path))} \"$CELL\"",
    ]
    return "\n".join(lines) + "\n"


def write_slurm_scripts(study: StudyDefinition, cells: Sequence[Cell], *, config_path: Path, repo_root: Path,
                        python: str = sys.executable) -> list[tuple[Path, int]]:
    """Write one script per `slurm_jobs` group to ``<runs_dir>/slurm/<stem>.sbatch`` (atomically);
    return ``(path, number of array tasks)`` of each.

    Overwriting an earlier script is safe: sbatch keeps its own copy of a submitted one.
    """
    written = []
    for stem, options, members in slurm_jobs(study, cells):
        path = Path(study.runs_dir) / "slurm" / f"{stem}.sbatch"
        text = slurm_script(study, members, options, config_path=config_path, repo_root=repo_root, python=python)
        atomic_write_text(path, text)
        path.chmod(0o755)
        written.append((path, len(members)))
    return written
