"""The project's LightningCLI: any LightningModule/DataModule by ``class_path``, TensorBoard logs."""
from __future__ import annotations

import pickle
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.utilities import rank_zero_info

import lightning_modules.backbones  # noqa: F401 - registers the tiny BiT models with timm
from datamodules.errors import InputError
from lightning_modules.divergence import NonFiniteLossError
from lightning_modules.run_folder import last_checkpoint, run_version
from lightning_modules.safe_load import UnsafeCheckpointError, refusal

_CURRENT: dict = {}  # the running subcommand's ckpt_path, for the refusal message


class StudyCLI(LightningCLI):
    """LightningCLI with the values a module derives from its data linked, not repeated.

    ``data.num_classes`` → ``model.num_classes`` and ``data.num_train_examples`` →
    ``model.dataset_size`` (the HyperRule and the study cell are functions of it).
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
        if self.subcommand is None:
            return
        config = self.config[self.subcommand]
        init = _tensorboard_init_args(config.trainer.get("logger"))
        if init is None:
            return
        if init.get("version") is None:
            init.version = run_version(config.as_dict(), self.subcommand)
        folder = Path(init.save_dir) / str(init.get("name") or "lightning_logs") / init.version
        checkpoints = _checkpoint_folder(config, folder)
        if self.subcommand == "fit" and config.get("ckpt_path") is None and last_checkpoint(checkpoints):
            raise InputError(f"{folder} holds an earlier run of this command ({last_checkpoint(checkpoints)}): add "
                             f"--ckpt_path last to continue it, or --trainer.logger.init_args.version NAME to start another")
        step = _resumed_step(config.get("ckpt_path"), checkpoints)
        if init.get("purge_step") is None and (step or any(folder.glob("events.out.tfevents.*"))):
            init.purge_step = step or 0  # what was logged after the checkpoint is logged again
        rank_zero_info(f"run folder: {folder}" + (f" (resuming after step {step})" if step else ""))

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the checkpoint's hparams here (weights_only=True) before anything runs
        if self.config.get("subcommand"):
            _CURRENT["ckpt_path"] = self.config[self.config.subcommand].get("ckpt_path")
        super()._parse_ckpt_path()

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in self._subcommand_method_arguments[subcommand] and kwargs.get("weights_only") is None:
            kwargs["weights_only"] = True
        return kwargs

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
        return int(torch.load(ckpt, mmap=True, weights_only=True, map_location="cpu").get("global_step") or 0)
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
