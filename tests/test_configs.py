"""Every stage config parses through the real CLI (catches typos and wrong types cheaply)."""
from pathlib import Path

import pytest
import yaml

from lightning_modules.cli import cli_main
from study.runner import StudyDefinition

STAGE_CONFIGS = sorted(p for p in Path("configs").rglob("*.yaml") if p.name != "study.yaml")


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
