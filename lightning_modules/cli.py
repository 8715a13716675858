"""The project's LightningCLI: any LightningModule/DataModule by ``class_path``, TensorBoard logs."""
from __future__ import annotations

import pickle

import lightning as L
from lightning.pytorch.cli import LightningCLI

import lightning_modules.backbones  # noqa: F401 - registers the tiny BiT models with timm
from lightning_modules.safe_load import UnsafeCheckpointError, refusal

_CURRENT: dict = {}  # the running subcommand's ckpt_path, for the refusal message


class StudyCLI(LightningCLI):
    """LightningCLI with the values a module derives from its data linked, not repeated.

    ``data.num_classes`` → ``model.num_classes`` and ``data.num_train_examples`` →
    ``model.dataset_size`` (the HyperRule and the study cell are functions of it).
    ``--ckpt_path`` files are loaded with ``weights_only=True`` unless ``--weights_only false``
    is given: a checkpoint that would run code while loading is refused.
    """

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
    except (FileNotFoundError, ValueError, pickle.UnpicklingError) as err:
        cause = _cause(err, (FileNotFoundError, UnsafeCheckpointError, pickle.UnpicklingError))
        if cause is None:
            raise
        if isinstance(cause, pickle.UnpicklingError):  # Lightning loading --ckpt_path with weights_only=True
            cause = refusal(_CURRENT.get("ckpt_path") or "the checkpoint", cause)
        raise SystemExit(f"error: {cause}") from None


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
