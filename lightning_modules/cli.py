"""The project's LightningCLI: any LightningModule/DataModule by ``class_path``, TensorBoard logs."""
from __future__ import annotations

import lightning as L
from lightning.pytorch.cli import LightningCLI

import lightning_modules.backbones  # noqa: F401 - registers the tiny BiT models with timm


class StudyCLI(LightningCLI):
    """LightningCLI with the values a module derives from its data linked, not repeated.

    ``data.num_classes`` → ``model.num_classes`` and ``data.num_train_examples`` →
    ``model.dataset_size`` (the HyperRule and the study cell are functions of it).
    """

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
    except (FileNotFoundError, ValueError) as err:
        missing = _missing_file(err)
        if missing is None:
            raise
        raise SystemExit(f"error: {missing}") from None


def _missing_file(err: BaseException) -> FileNotFoundError | None:
    """The FileNotFoundError behind ``err`` (jsonargparse wraps errors raised while instantiating)."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, FileNotFoundError):
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
