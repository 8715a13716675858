"""The project's LightningCLI: any LightningModule/DataModule by ``class_path``, TensorBoard logs."""
from __future__ import annotations

import importlib
import pickle
from pathlib import Path

import lightning as L
from lightning.fabric.accelerators import CPUAccelerator, CUDAAccelerator, MPSAccelerator, XLAAccelerator
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

import lightning_modules.backbones  # noqa: F401 - registers the tiny BiT models with timm
from conversion.errors import InputError
from lightning_modules.divergence import NonFiniteLossError
from lightning_modules.global_batch import split_global_batch
from lightning_modules.run_folder import checkpoint_step, last_checkpoint, run_version
from lightning_modules.safe_load import UnsafeCheckpointError, refusal

_CURRENT: dict = {}  # the running subcommand's ckpt_path, for the refusal message


class StudyCLI(LightningCLI):
    """LightningCLI with the values a module derives from its data linked, not repeated.

    ``data.num_classes`` → ``model.num_classes`` and ``data.num_train_examples`` →
    ``model.dataset_size`` (the HyperRule is a function of it).

    Derived settings are resolved from the parsed config before any class is built, written
    into the config (so the Trainer is built with them, and the run folder's ``config.yaml``
    records them) and logged in one line at start-up (``--print_config`` prints the config as
    given, before they are derived):

    - ``data.global_batch`` (with ``data.batch_size`` unset): the per-device
      ``data.batch_size`` and ``trainer.accumulate_grad_batches`` from devices x nodes and
      ``data.max_device_batch`` (``lightning_modules.global_batch``); an integer
      ``trainer.val_check_interval`` means optimizer steps and becomes micro-batches (x the
      accumulation). A global batch that does not divide over the devices is refused in one
      line. A ``data.batch_size`` given too must agree with it (as in a saved ``config.yaml``);
      two that disagree are refused in one line (which one was meant cannot be guessed).
    - ``trainer.max_steps`` left at -1 in ``fit``: a model class with ``fit_steps(init_args,
      dataset_size)`` (``FinetuneModule``: the HyperRule) gets it from the training set size,
      which the DataModule class reports from the config (``train_size(init_args)``: a manifest read).
    ``--ckpt_path`` files are loaded with ``weights_only=True`` unless ``--weights_only false``
    is given: a checkpoint that would run code while loading is refused.

    Run folders: a TensorBoard logger without an explicit ``version`` gets ``run-<hash>`` of
    the resolved config (``lightning_modules.run_folder``), so its checkpoints
    (``<save_dir>/<name>/run-<hash>/checkpoints/``) are found by a rerun of the same command
    with ``--ckpt_path last``, and the resumed run writes into the same TensorBoard run
    (events logged after the checkpoint by the stopped run are purged: ``purge_step``). A
    ``fit`` without ``--ckpt_path`` in a run folder that already holds a checkpoint is refused
    (one line): restarting would silently throw that run away.
    """

    def after_instantiate_classes(self) -> None:
        # a DataModule's start-up checks (e.g. the OOD releases' scan) before the trainer writes anything
        check = getattr(self.datamodule, "check_inputs", None)
        if self.subcommand is not None and callable(check):
            check(self.subcommand)

    def before_instantiate_classes(self) -> None:
        # run=False (no subcommand): the config is the top level and the caller fits by hand
        config = self.config[self.subcommand] if self.subcommand is not None else self.config
        if self.subcommand is not None:
            _name_run_folder(config, self.subcommand)  # first: the folder is named by the settings as given
        if "weights_only" in config and config.weights_only is None:
            config.weights_only = True  # --ckpt_path is loaded without running code unless asked
        derived = [line for line in (_derive_batch(config), _derive_max_steps(config, self.subcommand)) if line]
        if derived:
            rank_zero_info("derived: " + "; ".join(derived))

    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        # next, LightningCLI reads the checkpoint's hparams (weights_only=True) before anything runs
        if self.config.get("subcommand"):
            _CURRENT["ckpt_path"] = self.config[self.config.subcommand].get("ckpt_path")

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.num_train_examples", "model.init_args.dataset_size", apply_on="instantiate")


def cli_main(args: list[str] | None = None, run: bool = True) -> StudyCLI:
    """Run the CLI; ``args`` lets tests and the study runner call it in-process.

    A missing dataset, beton or checkpoint ends the run with one line naming the path and
    the command that creates it, not a traceback.
    """
    try:
        return _build(args, run)
    except (FileNotFoundError, ValueError, pickle.UnpicklingError, RuntimeError) as err:
        cause = _cause(err, (FileNotFoundError, UnsafeCheckpointError, pickle.UnpicklingError, InputError, NonFiniteLossError))
        if cause is None:
            raise
        if isinstance(cause, pickle.UnpicklingError):  # Lightning loading --ckpt_path with weights_only=True
            cause = refusal(_CURRENT.get("ckpt_path") or "the checkpoint", cause)
        raise SystemExit(f"error: {cause}") from None


def _name_run_folder(config, subcommand: str) -> None:
    """``run-<hash>`` as the TensorBoard logger's version (unless one is given), the refusal of a
    fresh ``fit`` over a folder with checkpoints, and ``purge_step`` for a resumed run."""
    init = _tensorboard_init_args(config.trainer.get("logger"))
    if init is None:
        return
    if init.get("version") is None:
        init.version = run_version(config.as_dict(), subcommand)
    folder = Path(init.save_dir) / str(init.get("name") or "lightning_logs") / init.version
    checkpoints = _checkpoint_folder(config, folder)
    if subcommand == "fit" and config.get("ckpt_path") is None and last_checkpoint(checkpoints):
        raise InputError(f"{folder} holds an earlier run of this command ({last_checkpoint(checkpoints)}): add "
                         f"--ckpt_path last to continue it, or --trainer.logger.init_args.version NAME to start another")
    step = _resumed_step(config.get("ckpt_path"), checkpoints)
    if init.get("purge_step") is None and (step or any(folder.glob("events.out.tfevents.*"))):
        init.purge_step = step or 0  # what was logged after the checkpoint is logged again
    rank_zero_info(f"run folder: {folder}" + (f" (resuming after step {step})" if step else ""))


def device_count(accelerator, devices) -> int:
    """Devices per node the Trainer will use for ``trainer.accelerator`` / ``trainer.devices``,
    as Lightning counts them: an int or a list of ids as given; ``"auto"`` the accelerator's
    ``auto_device_count()`` (1 on the CPU); ``-1`` or ``"0,1"`` through its ``parse_devices``."""
    if isinstance(devices, (list, tuple)):
        return len(devices)
    if isinstance(devices, int) and not isinstance(devices, bool) and devices > 0:
        return devices
    kind = _accelerator_class(accelerator)
    if devices == "auto":
        return kind.auto_device_count()
    parsed = kind.parse_devices(devices)
    return parsed if isinstance(parsed, int) else len(parsed or ())


def _accelerator_class(accelerator):
    """The Lightning accelerator class ``trainer.accelerator`` names (``"auto"``: the first
    available, in Lightning's order; ``"gpu"``: MPS or CUDA)."""
    if accelerator is not None and not isinstance(accelerator, str):  # an instance or class_path
        path = getattr(accelerator, "class_path", None)
        return _imported(path) if path else type(accelerator)
    named = {"cpu": CPUAccelerator, "cuda": CUDAAccelerator, "mps": MPSAccelerator, "tpu": XLAAccelerator}
    if accelerator in named:
        return named[accelerator]
    candidates = (MPSAccelerator, CUDAAccelerator) if accelerator == "gpu" else (XLAAccelerator, MPSAccelerator, CUDAAccelerator)
    return next((c for c in candidates if c.is_available()), CUDAAccelerator if accelerator == "gpu" else CPUAccelerator)


def _imported(class_path: str):
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _init_args(config, key: str):
    """``config.<key>.init_args`` (subclass mode), or None."""
    node = config.get(key)
    return node.get("init_args") if node is not None and hasattr(node, "get") else None


def _derive_batch(config) -> str | None:
    """Per-device batch and accumulation from ``data.global_batch`` (see ``StudyCLI``); written
    into ``config``. Returns the start-up line's part, None when nothing is derived."""
    data, trainer = _init_args(config, "data"), config.trainer
    if data is None or "global_batch" not in data:
        return None
    if data.get("global_batch") is None:
        if data.get("batch_size") is None:
            raise InputError("set data.init_args.global_batch (the batch one optimizer step sees on all devices), "
                             "or data.init_args.batch_size (per device)")
        return None
    world = device_count(trainer.get("accelerator"), trainer.get("devices")) * int(trainer.get("num_nodes") or 1)
    if data.get("batch_size") is not None:
        accumulation = int(trainer.get("accumulate_grad_batches") or 1)
        applied = data.batch_size * world * accumulation
        if applied != data.global_batch:
            raise InputError(f"data.init_args.batch_size={data.batch_size} per device makes a global batch of {applied} on "
                             f"{world} device(s), but data.init_args.global_batch={data.global_batch}: set one of them "
                             f"(global_batch, with batch_size null, derives the per-device batch and accumulation)")
        return f"global batch {applied} = {world} device(s) x {accumulation} accumulation step(s) x {data.batch_size} per device"
    try:
        split = split_global_batch(data.global_batch, world, data.get("max_device_batch"))
    except ValueError as err:
        raise InputError(str(err)) from None
    data.batch_size = split.per_device
    trainer.accumulate_grad_batches = split.accumulation
    line = (f"global batch {split.global_batch} = {world} device(s) x {split.accumulation} accumulation step(s) x "
            f"{split.per_device} per device (data.init_args.batch_size={split.per_device}, "
            f"trainer.accumulate_grad_batches={split.accumulation})")
    interval = trainer.get("val_check_interval")
    # Lightning counts an int val_check_interval in micro-batches; the configs mean optimizer steps
    if isinstance(interval, int) and not isinstance(interval, bool) and split.accumulation > 1:
        trainer.val_check_interval = interval * split.accumulation
        line += f"; trainer.val_check_interval={trainer.val_check_interval} micro-batches (every {interval} steps)"
    return line


def _derive_max_steps(config, subcommand: str | None) -> str | None:
    """``trainer.max_steps`` of a ``fit`` (or of a ``run=False`` CLI) from the model class's
    ``fit_steps`` and the training set size (see ``StudyCLI``); written into ``config``.
    Returns the start-up line's part."""
    model, data = config.get("model"), config.get("data")
    if subcommand not in ("fit", None) or model is None or data is None or not model.get("class_path") or not data.get("class_path"):
        return None
    fit_steps = getattr(_imported(model.class_path), "fit_steps", None)
    if fit_steps is None:
        return None
    configured = config.trainer.get("max_steps")
    train_size = getattr(_imported(data.class_path), "train_size", None)
    if train_size is None:
        if configured in (-1, None):
            raise InputError(f"{model.class_path} takes its length from the training set size, which {data.class_path} "
                             f"does not report before it is built (no train_size): set trainer.max_steps")
        return None
    size = train_size(data.init_args.as_dict())
    steps = fit_steps(model.init_args.as_dict(), size)
    if configured in (-1, None):
        config.trainer.max_steps = steps
        return f"trainer.max_steps={steps} (the schedule of {model.class_path.rsplit('.', 1)[-1]} for {size:,} training images)"
    if configured != steps:
        rank_zero_warn(f"trainer.max_steps={configured} overrides the {steps} steps of the schedule for {size:,} training images")
    return None


def _tensorboard_init_args(logger):
    """The ``init_args`` of a single TensorBoardLogger in the config, else None."""
    if logger is None or isinstance(logger, (bool, list)) or not str(logger.get("class_path", "")).endswith("TensorBoardLogger"):
        return None
    return logger.init_args


def _checkpoint_folder(config, run_folder: Path) -> Path:
    """Where ModelCheckpoint keeps this run's checkpoints: its ``dirpath``, else ``<run folder>/checkpoints``."""
    dirpath = next((c.init_args.get("dirpath") for c in (config.trainer.get("callbacks") or [])
                    if str(c.get("class_path", "")).endswith("ModelCheckpoint") and c.init_args.get("dirpath")), None)
    return Path(dirpath) if dirpath else run_folder / "checkpoints"


def _resumed_step(ckpt, checkpoints: Path) -> int | None:
    """The ``global_step`` of the checkpoint ``--ckpt_path`` names (``last``: the newest
    ``last*.ckpt`` in ``checkpoints``, as Lightning picks it), or None when there is none."""
    if ckpt in (None, "hpc", "best"):
        return None
    if ckpt == "last":
        ckpt = last_checkpoint(checkpoints)
    if ckpt is None or not Path(ckpt).is_file():
        return None
    try:  # mmap: reads the step, not a multi-GB state
        return max(checkpoint_step(ckpt), 0)
    except Exception:  # an unreadable file is refused by Lightning itself, with its path
        return None


def _cause(err: BaseException | None, kinds: tuple) -> BaseException | None:
    """The first exception of ``kinds`` behind ``err`` (jsonargparse wraps errors raised while instantiating)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, kinds):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _build(args: list[str] | None, run: bool) -> StudyCLI:
    return StudyCLI(
        L.LightningModule,
        L.LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults={"logger": {"class_path": "lightning.pytorch.loggers.TensorBoardLogger", "init_args": {"save_dir": "runs"}}},
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )
