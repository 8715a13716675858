"""The folder → beton converter, its manifest, and the FFCV loaders built on it."""
import json

import numpy as np
import pytest

from conversion.beton import convert_folder, manifest_path, read_manifest
from conversion.files import sha256_file
from datamodules.ffcv_loaders import eval_loader, eval_shard, train_loader
from datamodules.pipelines import eval_pipelines, hyperrule_train_pipelines, inception_train_pipelines
from tests.conftest import WNIDS, write_colour_folder


def test_manifest_records_settings_classes_counts_and_checksum(colour_beton):
    manifest = read_manifest(colour_beton)
    assert manifest["classes"] == list(WNIDS)
    assert manifest["num_images"] == 24
    assert manifest["class_counts"] == {w: 6 for w in WNIDS}
    assert manifest["settings"]["jpeg_quality"] == 90 and manifest["settings"]["write_mode"] == "jpg"
    assert manifest["sha256"] == sha256_file(colour_beton)
    assert not list(colour_beton.parent.glob(".*.tmp"))  # nothing half-written left behind


def test_rerun_with_same_settings_does_nothing(tmp_path):
    write_colour_folder(tmp_path / "src", per_class=2)
    convert_folder(tmp_path / "src", tmp_path / "a.beton", num_workers=1)
    stamp = (tmp_path / "a.beton").stat().st_mtime_ns
    convert_folder(tmp_path / "src", tmp_path / "a.beton", num_workers=1)
    assert (tmp_path / "a.beton").stat().st_mtime_ns == stamp


def test_missing_beton_names_path_and_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.beton.*python -m conversion"):
        read_manifest(tmp_path / "missing.beton")


def test_unfinished_conversion_is_refused(tmp_path, colour_beton):
    # a beton without its manifest is what a killed conversion leaves
    (tmp_path / "half.beton").write_bytes(colour_beton.read_bytes())
    with pytest.raises(FileNotFoundError, match="did not finish"):
        read_manifest(tmp_path / "half.beton")


def test_cli_reports_a_missing_source_in_one_line(tmp_path):
    from conversion.convert import main

    with pytest.raises(SystemExit, match=f"error: {tmp_path / 'nope'} is not a folder"):
        main(["folder", str(tmp_path / "nope"), str(tmp_path / "x.beton")])


@pytest.mark.parametrize("world", [2, 3])
def test_eval_shards_cover_every_row_once(world):
    rows = np.arange(11)
    shards = [eval_shard(rows, r, world) for r in range(world)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(11))


def test_eval_loader_yields_uint8_batches_in_order_without_padding(colour_beton):
    rows = np.arange(24, dtype=np.uint32)
    seen = []
    for rank in range(2):
        loader = eval_loader(colour_beton, rows[:23], 5, lambda: eval_pipelines(16), "eval:16", num_workers=1, rank=rank, world_size=2)
        for images, labels, index in loader:
            assert images.dtype.is_floating_point is False and tuple(images.shape[1:]) == (3, 16, 16)
            seen.extend(index.tolist())
    assert sorted(seen) == list(range(23))  # 23 rows over 2 ranks: no duplicate, none lost


def test_labels_match_folders(colour_beton):
    manifest = json.loads(manifest_path(colour_beton).read_text())
    loader = eval_loader(colour_beton, np.arange(24, dtype=np.uint32), 8, lambda: eval_pipelines(16), "eval:16", num_workers=1, rank=0, world_size=1)
    for images, labels, index in loader:
        # conftest writes 6 images per class, class folders in sorted order
        assert (labels == index // 6).all()
    assert manifest["classes"] == sorted(manifest["classes"])


@pytest.mark.parametrize("make_pipelines", [lambda: inception_train_pipelines(12), lambda: hyperrule_train_pipelines(20, 12)])
def test_train_loader_shapes_and_seeded_order(colour_beton, make_pipelines):
    # FFCV operations hold per-loader state: every loader gets fresh pipeline objects
    def order(seed):
        loader = train_loader(colour_beton, np.arange(24, dtype=np.uint32), 8, make_pipelines(), num_workers=1, seed=seed, world_size=1, epoch=0, os_cache=True)
        out = []
        for images, labels, index in loader:
            assert tuple(images.shape) == (8, 3, 12, 12)
            out.extend(index.tolist())
        return out

    assert order(0) == order(0) != order(1)


def _truncate_one(src):
    victim = sorted(src.rglob("*.JPEG"))[3]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # a download cut short
    return victim


def test_truncated_jpeg_is_skipped_and_listed(tmp_path):
    write_colour_folder(tmp_path / "src", per_class=2)
    victim = _truncate_one(tmp_path / "src")
    manifest = convert_folder(tmp_path / "src", tmp_path / "a.beton", num_workers=1)
    assert manifest["num_images"] == 7 and manifest["num_source_images"] == 8
    assert list(manifest["skipped"]) == [str(victim)]
    assert sum(manifest["class_counts"].values()) == 7


def test_truncated_jpeg_aborts_with_its_path_on_request(tmp_path):
    from conversion.convert import build_parser

    write_colour_folder(tmp_path / "src", per_class=2)
    victim = _truncate_one(tmp_path / "src")
    with pytest.raises(ValueError, match=f"cannot decode image {victim}") as refused:
        convert_folder(tmp_path / "src", tmp_path / "a.beton", num_workers=1, on_corrupt="abort")
    assert not (tmp_path / "a.beton").exists() and not (tmp_path / "a.json").exists()
    # the fix it names is a flag the CLI accepts
    assert "--on-corrupt skip" in str(refused.value)
    args = build_parser().parse_args(["folder", "SRC", "OUT.beton", "--on-corrupt", "skip"])
    assert args.on_corrupt == "skip"


_SLOW_CONVERSION = """
import sys, time, pathlib
from conversion.beton import write_beton
from conversion.sources import scan_class_folders
src, out, marker = map(pathlib.Path, sys.argv[1:])
images = scan_class_folders(src)
def slow(im):  # runs in the writer's worker: the conversion is mid-write while it sleeps
    marker.touch()
    time.sleep(0.5)
    return im
write_beton(out, images.refs, images.labels, images.classes, num_workers=1, preprocess=slow)
"""


def test_a_conversion_killed_mid_write_leaves_nothing_that_looks_complete(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    write_colour_folder(tmp_path / "src", per_class=10)
    out, marker = tmp_path / "out" / "a.beton", tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_CONVERSION, str(tmp_path / "src"), str(out), str(marker)],
                            cwd=Path(__file__).parents[1], start_new_session=True)
    deadline = time.time() + 120
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert marker.exists(), "the conversion never started writing"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole tree: the writer and its workers, as a node failure would
    proc.wait()
    assert not out.exists() and not manifest_path(out).exists()
    with pytest.raises(FileNotFoundError, match="did not finish"):
        read_manifest(out)
    assert all(p.name.startswith(".") for p in out.parent.iterdir())  # only a hidden temp file may remain
    manifest = convert_folder(tmp_path / "src", out, num_workers=1)  # and a re-run completes
    assert manifest["num_images"] == 40 and read_manifest(out)["sha256"] == sha256_file(out)


def test_a_finished_beton_from_another_source_is_not_silently_replaced(tmp_path):
    write_colour_folder(tmp_path / "src", per_class=2)
    write_colour_folder(tmp_path / "src2", per_class=3, seed=1)
    convert_folder(tmp_path / "src", tmp_path / "a.beton", num_workers=1)
    with pytest.raises(ValueError, match=r"a\.beton already holds a finished conversion that differs \(source .*; num_source_images 8 -> 12\).*--overwrite"):
        convert_folder(tmp_path / "src2", tmp_path / "a.beton", num_workers=1)
    assert read_manifest(tmp_path / "a.beton")["num_images"] == 8
    assert convert_folder(tmp_path / "src2", tmp_path / "a.beton", num_workers=1, overwrite=True)["num_images"] == 12


def test_other_storage_settings_are_refused_too(tmp_path):
    from conversion.beton import BetonSettings

    write_colour_folder(tmp_path / "src", per_class=2)
    convert_folder(tmp_path / "src", tmp_path / "a.beton", num_workers=1)
    with pytest.raises(ValueError, match="settings"):
        convert_folder(tmp_path / "src", tmp_path / "a.beton", BetonSettings(jpeg_quality=75), num_workers=1)
