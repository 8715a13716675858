"""SLURM array jobs for a study: one array of upstream runs, one array of cells that depends on it.

Pre-training is shared: each upstream run is one task of the upstream array
(``srun <python> -m study upstream <study.yaml> <run>``), each cell one task of the cell array
(``srun <python> -m study cell <study.yaml> <cell>``: fine-tuning from its upstream run's final
checkpoint, refused when that run has not finished). The cell array is submitted with
``--dependency=afterok:<upstream array>``, so it starts once every upstream task has
succeeded; each array is sized by what it runs. Both run the same code as a local run (claims,
state markers, logs, result files). Scripts are written, never submitted: the caller prints the
``sbatch`` lines. Resources come from the study's ``slurm:`` mapping, one
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

from conversion.files import atomic_write_text
from study.definition import StudyDefinition
from results.schema import safe_name


def array_spec(n_cells: int, max_parallel: int | None = None) -> str:
    """``0-<n-1>`` (``%K`` appended to run at most K tasks at once)."""
    if n_cells < 1:
        raise ValueError("a SLURM array needs at least one cell")
    spec = f"0-{n_cells - 1}"
    return f"{spec}%{max_parallel}" if max_parallel else spec


def slurm_jobs(study: StudyDefinition, units: Sequence, kind: str) -> list[tuple[str, dict, list]]:
    """``(script stem, sbatch options, units)`` per array job of `kind` (``upstream`` or
    ``cells``): units grouped by their models' options, in order; one job is
    ``<name>-<kind>``, several are ``<name>-<kind>-<first model>``."""
    groups: list[tuple[dict, list]] = []
    for unit in units:
        options = study.slurm_options(unit.model)
        for known, members in groups:
            if known == options:
                members.append(unit)
                break
        else:
            groups.append((options, [unit]))
    if len(groups) == 1:
        return [(f"{study.name}-{kind}", groups[0][0], groups[0][1])]
    return [(f"{study.name}-{kind}-{safe_name(members[0].model)}", options, members) for options, members in groups]


def slurm_script(study: StudyDefinition, units: Sequence, options: dict, *, kind: str, config_path: Path,
                 repo_root: Path, python: str = sys.executable) -> str:
    """The text of one array job running `units` (upstream runs or cells, one task each) with `options`."""
    runs = Path(study.runs_dir)
    if not runs.is_absolute():
        runs = repo_root / runs  # --output is read by slurmd, which does not start in the repository
    command, what = ("upstream", "upstream run") if kind == "upstream" else ("cell", "cell")
    log = f'{runs / "logs"}/upstream-$UNIT.log' if kind == "upstream" else f'{runs / "logs"}/$UNIT.log'
    sbatch = {k: v for k, v in options.items() if k not in ("setup", "max_parallel")}
    lines = [
        "#!/bin/bash",
        f"# Study {study.name} ({config_path}): {len(units)} {what}(s), one array task each.",
        "# Written by `python -m study slurm`; submit with the sbatch lines it prints. "
        + ("Each task pre-trains one upstream run." if kind == "upstream" else
           "Each task fine-tunes and evaluates one cell from its finished upstream run."),
        f"#SBATCH --job-name={sbatch.pop('job_name', study.name)}-{'up' if kind == 'upstream' else 'ft'}",
        f"#SBATCH --array={array_spec(len(units), options.get('max_parallel'))}",
        f"#SBATCH --output={runs / 'logs' / 'slurm-%A_%a.out'}",
        *(f"#SBATCH --{key.replace('_', '-')}={value}" for key, value in sbatch.items()),
        "set -euo pipefail",
        f"cd {shlex.quote(str(repo_root))}",
        *options.get("setup", []),
        "UNITS=(",
        *(f"  {shlex.quote(u.name)}" for u in units),
        ")",
        'UNIT="${UNITS[$SLURM_ARRAY_TASK_ID]}"',
        f'echo "task $SLURM_ARRAY_TASK_ID: {what} $UNIT (log: {log})"',
        f"srun {shlex.quote(python)} -m study {command} {shlex.quote(str(config_path))} \"$UNIT\"",
    ]
    return "\n".join(lines) + "\n"


def write_slurm_scripts(study: StudyDefinition, units: Sequence, *, kind: str, config_path: Path, repo_root: Path,
                        python: str = sys.executable) -> list[tuple[Path, int]]:
    """Write one script per `slurm_jobs` group to ``<runs_dir>/slurm/<stem>.sbatch`` (atomically);
    return ``(path, number of array tasks)`` of each.

    Overwriting an earlier script is safe: sbatch keeps its own copy of a submitted one.
    """
    written = []
    for stem, options, members in slurm_jobs(study, units, kind):
        path = Path(study.runs_dir) / "slurm" / f"{stem}.sbatch"
        text = slurm_script(study, members, options, kind=kind, config_path=config_path, repo_root=repo_root, python=python)
        atomic_write_text(path, text)
        path.chmod(0o755)
        written.append((path, len(members)))
    return written
