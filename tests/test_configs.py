"""Every stage config parses through the real CLI (catches typos and wrong types cheaply)."""
from pathlib import Path

import pytest
import yaml

from lightning_modules.cli import cli_main
from study.runner import StudyDefinition

# every LightningCLI config under configs/ (a model or trainer section); not the study definitions
# (docs/study.md: they name their stage configs) nor the planner's throughput table
STAGE_CONFIGS = sorted(p for p in Path("configs").rglob("*.yaml")
                       if {"model", "trainer"} & set(yaml.safe_load(p.read_text())) and "upstream_config" not in yaml.safe_load(p.read_text()))


@pytest.mark.parametrize("config", STAGE_CONFIGS, ids=str)
def test_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("lightning_modules.")
    assert printed["data"]["class_path"].startswith("datamodules.")


def test_miniature_study_definition_names_existing_configs():
    study = StudyDefinition.from_yaml("configs/miniature/study.yaml")
    assert Path(study.upstream_config).exists() and Path(study.downstream_config).exists()
    assert len(study.cells()) == 18  # 2 models x 3 sizes x 3 step budgets, as the paper's grid
    assert study.data_sizes == sorted(study.data_sizes) and study.steps == sorted(study.steps)


def test_fidelity_study_is_the_papers_grid_in_the_papers_regime():
    """Both fidelity study files load with their stage configs, and their cells see each upstream
    image as often as the paper's (115 / 1,150 times at the smallest size, ~9 / ~88 at the largest)."""
    study = StudyDefinition.from_yaml("configs/fidelity/study.yaml")
    assert len(study.cells()) == 18 and Path(study.upstream_config).exists() and Path(study.downstream_config).exists()
    batch = yaml.safe_load(Path(study.upstream_config).read_text())["data"]["init_args"]["global_batch"]
    small, large = study.data_sizes[0], study.data_sizes[-1]
    assert round(study.steps[0] * batch / small) == 115 and round(study.steps[-1] * batch / small, -1) == 1150
    assert round(study.steps[0] * batch / large) == 9 and round(study.steps[-1] * batch / large) == 89
    corners = StudyDefinition.from_yaml("configs/fidelity/corners.yaml")
    assert corners.generate == study.generate  # the same data: its cells are the full grid's corners
    assert corners.data_sizes == [small, large] and corners.steps == [study.steps[0], study.steps[-1]]


# evaluation-only configs (an EvaluationModule: nothing trained, nothing to resume)
TRAINING_CONFIGS = [p for p in STAGE_CONFIGS
                    if not yaml.safe_load(p.read_text())["model"]["class_path"].endswith("EvaluationModule")]


def test_the_evaluation_configs_are_known():
    assert {p.name for p in STAGE_CONFIGS if p not in TRAINING_CONFIGS} == {"evaluate.yaml", "evaluate_ood.yaml", "parity.yaml"}


@pytest.mark.parametrize("config", TRAINING_CONFIGS, ids=str)
def test_training_configs_resume_where_a_rerun_looks(config, capsys):
    """What ``--ckpt_path last`` relies on: ``last.ckpt`` kept (and periodically refreshed) by a
    ModelCheckpoint in the run folder (no fixed ``dirpath`` shared by runs), the signal stop,
    atomic checkpoint writes."""
    with pytest.raises(SystemExit):
        cli_main(["fit", "--config", str(config), "--print_config"])
    trainer = yaml.safe_load(capsys.readouterr().out)["trainer"]
    callbacks = {c["class_path"].rsplit(".", 1)[-1]: c.get("init_args", {}) for c in trainer["callbacks"]}
    checkpoint = callbacks["ModelCheckpoint"]
    assert checkpoint["save_last"] is True and checkpoint["every_n_train_steps"] and checkpoint.get("dirpath") is None
    assert "PreemptionCheckpoint" in callbacks
    assert [p["class_path"] for p in trainer["plugins"]] == ["callbacks.atomic_checkpoint_io.AtomicCheckpointIO"]
    assert trainer["logger"]["init_args"].get("version") is None  # run-<hash>, set by the CLI
