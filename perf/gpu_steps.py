"""Training-step throughput and peak memory of BiT R50x1 and R101x3 at 224 px on one GPU (bf16 autocast, channels_last, SGD).

Each row runs ``PretrainModule``'s own forward (uint8 images normalised on the device,
channels_last) and loss (softmax cross-entropy over BiT-M's 21,843 classes) under bf16
autocast, as Lightning's ``bf16-mixed`` does, then backward and an SGD step (momentum 0.9,
weight decay on weights only) in fp32 weights, on random uint8 images already on the GPU: the
training step alone, no data loading. ``--warmup`` steps are not timed (allocator growth,
cuDNN's algorithm search with ``--cudnn-benchmark``); then ``--steps`` steps between two
synchronisations. Peak memory is ``torch.cuda.max_memory_allocated`` from the row's start
(weights, gradients and momentum included). A batch that does not fit is reported as OOM
and the model's larger batches are skipped. Prints a Markdown table.

    .venv/bin/python -m perf.gpu_steps [--steps 20 --warmup 5 --batch 32 64 128 --cudnn-benchmark]
"""
from __future__ import annotations

import argparse
import gc
import sys
import time

import torch

MODELS = ("resnetv2_50x1_bit", "resnetv2_101x3_bit")
NUM_CLASSES = 21843  # BiT-M's ImageNet-21k head


def measure(module, optimizer, batch: int, steps: int, warmup: int, resolution: int = 224) -> dict:
    """Images/s, ms/step and peak memory (GiB; None off CUDA) of ``steps`` timed training steps of ``module``."""
    device = module.mean.device
    generator = torch.Generator(device).manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, resolution, resolution), dtype=torch.uint8, device=device, generator=generator)
    labels = torch.randint(0, module.hparams.num_classes, (batch,), device=device, generator=generator)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = module.loss_fn(module(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return {"batch": batch, "ms_per_step": 1e3 * seconds / steps, "images_per_s": batch * steps / seconds, "peak_gib": peak}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build(backbone: str, device: torch.device, num_classes: int = NUM_CLASSES):
    """``(PretrainModule, SGD)`` as the pre-training configs build them (channels_last, BiT-M's optimizer), on ``device``."""
    from lightning_modules.pretrain import PretrainModule  # here: --help and the no-CUDA refusal need no Lightning

    with torch.device(device):  # initialised on the device: R101x3's 388M parameters are slow to initialise on a CPU
        module = PretrainModule(backbone=backbone, num_classes=num_classes, channels_last=True)
    module.train()
    optimizer = torch.optim.SGD(module.decay_groups(module.model, module.hparams.weight_decay), lr=0.01, momentum=module.hparams.momentum)
    return module, optimizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per row")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 64, 128],
                        help="per-device batches (configs/bit: R50x1 128, R101x3 32)")
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--cudnn-benchmark", action="store_true", help="let cuDNN pick algorithms (trainer.benchmark: true); the configs leave it off")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_steps: no CUDA device (torch.cuda.is_available() is False); run it on a GPU machine", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, 224 px, bf16 autocast, channels_last, "
          f"SGD, cudnn.benchmark={args.cudnn_benchmark}, {args.warmup} + {args.steps} steps per row\n")
    print("| model | params | batch | ms/step | images/s | peak memory |")
    print("| --- | --- | --- | --- | --- | --- |")
    for backbone in args.models:
        module, optimizer = build(backbone, device)
        params = sum(p.numel() for p in module.parameters()) / 1e6
        for batch in sorted(args.batch):
            try:
                r = measure(module, optimizer, batch, args.steps, args.warmup)
            except torch.cuda.OutOfMemoryError:
                print(f"| {backbone} | {params:.0f}M | {batch} | OOM | | |", flush=True)
                break
            print(f"| {backbone} | {params:.0f}M | {batch} | {r['ms_per_step']:.0f} | {r['images_per_s']:.0f} | {r['peak_gib']:.1f} GiB |", flush=True)
        del module, optimizer
        gc.collect()
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
