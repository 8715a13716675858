"""TensorBoard for real: start the ``tensorboard`` binary on a loopback port and read, through
its own HTTP API, what a user would open in the browser: the per-benchmark OOD scalars
(Scalars tab), the grid figures (Images tab) and the grid tables (Text tab).

The fast test writes the event files with the project's own pieces: Lightning's
TensorBoardLogger logging ``ood/<key>/error`` as the OOD evaluation callback does, and the
GridReport callback rebuilding the grid from result files. The slow one reads the log dir of
the real tiny cell trained by the session ``cell`` fixture.
"""
from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image

from callbacks.grid_report import GridReport
from results.schema import BENCHMARKS, result_path, write_result

TENSORBOARD = Path(sys.executable).parent / "tensorboard"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def tensorboard(logdir: Path):
    """A running ``tensorboard --logdir logdir``; yields ``get(path, **query) -> bytes``."""
    port = _free_port()
    proc = subprocess.Popen([str(TENSORBOARD), "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
                             "--load_fast=false", "--reload_interval=1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def get(path: str, **query) -> bytes:
        url = f"http://127.0.0.1:{port}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()

    try:
        yield get
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_for(get, path: str, ready, timeout: float = 90.0):
    """Poll `path` (JSON) until `ready(data)`; TensorBoard starts and loads events in the background."""
    deadline, last = time.time() + timeout, None
    while time.time() < deadline:
        try:
            last = json.loads(get(path))
            if ready(last):
                return last
        except OSError:  # not listening yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"TensorBoard did not serve {path} in {timeout}s; last answer: {last}")


def _check_served(get, run: str, errors: dict[str, float], figures: list[str], table: str, table_has: str):
    scalars = _wait_for(get, "/data/plugin/scalars/tags", lambda d: run in d and "ood/imagenet_a/error" in d[run])
    for key, value in errors.items():
        assert f"ood/{key}/error" in scalars[run]
        [[_, _, served]] = json.loads(get("/data/plugin/scalars/scalars", run=run, tag=f"ood/{key}/error"))
        assert served == pytest.approx(value, abs=1e-6)
    images = _wait_for(get, "/data/plugin/images/tags", lambda d: run in d and d[run])
    assert set(figures) <= set(images[run]), images[run]
    for tag in figures:
        [meta] = json.loads(get("/data/plugin/images/images", run=run, tag=tag, sample=0))
        png = get("/data/plugin/images/individualImage?" + meta["query"])
        with Image.open(io.BytesIO(png)) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 150
            assert im.convert("L").getextrema()[0] < 100  # drawn on, not a blank canvas
    texts = _wait_for(get, "/data/plugin/text/tags", lambda d: run in d and d[run])
    # torch's SummaryWriter.add_text stores tag T as "T/text_summary"
    assert {f"{t}/text_summary" for t in (table, "grid/csv", "grid/notes")} <= set(texts[run]), texts[run]
    [entry] = json.loads(get("/data/plugin/text/text", run=run, tag=f"{table}/text_summary"))
    assert "<table>" in entry["text"] and table_has in entry["text"]


def test_tensorboard_serves_ood_scalars_grid_images_and_tables(tmp_path):
    results = tmp_path / "runs/results"
    # two models x 2 x 2 cells; small_model's (steps 20, size 2000) error on imagenet_a: .30 → 40 % below .50
    table = {("small_model", 10, 1000): 0.50, ("small_model", 10, 2000): 0.40, ("small_model", 20, 1000): 0.45,
             ("small_model", 20, 2000): 0.30, ("big_model", 10, 1000): 0.40, ("big_model", 10, 2000): 0.30,
             ("big_model", 20, 1000): 0.35, ("big_model", 20, 2000): 0.20}
    for (model, steps, size), err in table.items():
        # two benchmarks keep the figures quick to draw; the grid code is tested elsewhere
        record = dict(model=model, steps=steps, data_size=size, seed=0, num_params=1 if model == "small_model" else 9,
                      errors={"imagenet_a": err, "imagenet_c": err / 2})
        write_result(result_path(results, record), record)
    # the run whose TensorBoard log we write: big_model, 20 steps, 2000 images, every benchmark
    name = "finetune/big_model-size=2000-steps=20-seed=0"
    run = f"{name}/version_0"
    errors = {b: round(0.2 + 0.05 * i, 2) for i, b in enumerate(BENCHMARKS)}
    logger = TensorBoardLogger(tmp_path / "runs/tb", name=name)
    logger.log_metrics({f"ood/{k}/error": v for k, v in errors.items()}, step=7)  # as OODEvaluation logs them
    trainer = SimpleNamespace(is_global_zero=True, logger=logger, global_step=7)
    report = GridReport(str(results), str(tmp_path / "runs/grid")).rebuild(trainer)
    logger.finalize("success")
    assert report is not None and report.n_results == 8
    figures = [f"grid/{k}" for k in ("top_small_model", "top_big_model", "bottom_small_model-vs-big_model",
                                      "errors_small_model", "lines_big_model")]
    with tensorboard(tmp_path / "runs/tb") as get:
        _check_served(get, run, errors, figures, "grid/top_small_model/table", "40.0")


@pytest.mark.slow
def test_tensorboard_serves_a_finished_tiny_cell(cell):
    """The log dir of a real (tiny) study cell: pre-trained, fine-tuned, evaluated, grid rebuilt."""
    world, _, log_dir, _ = cell
    record = json.loads((world / "runs/results/resnetv2_tiny_bit-size=40-steps=4-seed=0.json").read_text())
    tb_root = world / "runs/tb"
    run = str(log_dir.relative_to(tb_root))
    with tensorboard(tb_root) as get:
        _check_served(get, run, record["errors"], ["grid/top_resnetv2_tiny_bit", "grid/errors_resnetv2_tiny_bit",
                                                   "grid/lines_resnetv2_tiny_bit"], "grid/top_resnetv2_tiny_bit/table", "0.0")
