"""A study's replicate under another seed (`study/reseed.py`, `quickstart --seed`), and the
start-up check that a study generating its data reads it where it writes it."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from study.definition import StudyConfigError, StudyDefinition
from study.overrides import upstream_overrides, with_study_values
from study.quickstart import write_replicate
from study.reseed import reseeded

MINIATURE = Path("configs/miniature/study.yaml")


def raw_study(tmp_path: Path, **changes) -> dict:
    raw = yaml.safe_load(MINIATURE.read_text())
    raw["runs_dir"] = str(tmp_path / "runs")
    raw.update(changes)
    return raw


def test_replicate_changes_every_seed_and_moves_every_path_under_the_generated_root(tmp_path):
    raw = raw_study(tmp_path, model_overrides={"resnetv2_tinyx3_bit": {"downstream": {"model.init_args.mixup_alpha": 0.2}}})
    out = reseeded(copy.deepcopy(raw), 5, source=str(MINIATURE))
    study = StudyDefinition.from_dict(out)  # valid, and check_generated_paths passes on the moved paths
    assert study.name == "miniature-seed5" and study.runs_dir == f"{tmp_path}/runs-seed5" and study.seeds == [5]
    assert study.generate["seed"] == 5 and study.generate["root"] == "data/miniature-seed5"
    assert {k: v for k, v in study.generate.items() if k not in ("seed", "root")} == \
        {k: v for k, v in raw["generate"].items() if k not in ("seed", "root")}
    assert study.downstream_extra_configs == ["data/miniature-seed5/ood_options.yaml"]
    for model in study.models:
        cell = next(c for c in study.cells() if c.model == model)
        up = upstream_overrides(study, study.upstream_of(cell))["data"]["init_args"]
        assert up["beton"] == "data/miniature-seed5/betons/upstream.beton" and up["subset_seed"] == 5
        # the study file's part of the cell's override file (its extra configs are not generated here)
        down = with_study_values({}, study, model, None, "downstream")["data"]["init_args"]
        assert down["train_beton"] == "data/miniature-seed5/betons/downstream_train.beton"
        assert down["val_beton"] == "data/miniature-seed5/betons/downstream_val.beton"
        assert down["ood_root"] == "data/miniature-seed5/ood"
        assert cell.seed == 5
    # what the study file set before is kept
    assert study.model_overrides["resnetv2_tinyx3_bit"]["downstream"]["model.init_args.mixup_alpha"] == 0.2
    assert raw["generate"]["root"] == "data/miniature"  # the original is not modified


def test_a_study_reading_another_studys_data_is_refused_at_load(tmp_path):
    """The bug this guards: a replicate with a new generator seed and root whose stage configs
    still read the original's betons (it trained on the original's data)."""
    raw = raw_study(tmp_path)
    raw["generate"] = {**raw["generate"], "seed": 1, "root": "data/miniature-other"}
    raw["downstream_extra_configs"] = []
    with pytest.raises(StudyConfigError, match=r"generates its data under data/miniature-other but the upstream stage of "
                                               r"resnetv2_tiny_bit reads data.init_args.beton=data/miniature/betons/upstream.beton"):
        StudyDefinition.from_dict(raw)
    raw["model_overrides"] = {m: {"upstream": {"data.init_args.beton": "data/miniature-other/u.beton"}} for m in raw["models"]}
    with pytest.raises(StudyConfigError, match=r"downstream stage of resnetv2_tiny_bit reads data.init_args.(train_beton|val_beton|ood_root)"):
        StudyDefinition.from_dict(raw)


def test_replicate_needs_generated_data_and_a_seed(tmp_path):
    raw = raw_study(tmp_path)
    with pytest.raises(StudyConfigError, match="non-negative integer"):
        reseeded(raw, -1)
    del raw["generate"]
    with pytest.raises(StudyConfigError, match="needs a study that generates its data"):
        reseeded(raw, 1)


def test_quickstart_writes_the_replicates_study_file_into_its_runs_folder(tmp_path):
    source = tmp_path / "study.yaml"
    source.write_text(yaml.safe_dump(raw_study(tmp_path)))
    path = write_replicate(str(source), 2)
    assert Path(path) == tmp_path / "runs-seed2" / "study.yaml"
    assert StudyDefinition.from_yaml(path).name == "miniature-seed2"
