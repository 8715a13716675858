"""Evaluate a trained classifier from a local file: no training, just the clean val set and the OOD suite."""
from __future__ import annotations

from lightning_modules.backbones import load_backbone_weights
from lightning_modules.classifier import ImageClassifier
from lightning_modules.finetune import read_upstream_checkpoint


class EvaluationModule(ImageClassifier):
    """A trained classifier, loaded whole (head included) from exactly one local source.

    - ``checkpoint``: a Lightning checkpoint written by this project (fine-tuning); the backbone
      name and the weights come with it, read with ``weights_only=True``.
    - ``weights`` + ``backbone``: a timm ``.pth``/``.safetensors`` or BiT ``.npz`` file of a
      classifier whose outputs are the data's class list (e.g. a BiT-M-R50x1 ImageNet-1k
      model).
    - neither: ``backbone`` only, for Lightning's ``--ckpt_path`` to fill in the weights.

    What the run is (e.g. which cell of a study it fills) is not the model's to say: give it
    to the OOD callback (``OODEvaluation``'s ``record`` and ``result_file``).
    ``num_classes`` is linked from the datamodule; a head of another size is refused.
    ``dataset_size`` is linked by the CLI from every datamodule and unused (nothing is trained).
    """

    def __init__(self, num_classes: int, backbone: str | None = None, checkpoint: str | None = None, weights: str | None = None,
                 channels_last: bool = False, dataset_size: int | None = None):
        if checkpoint is not None and weights is not None:
            raise ValueError("set model.checkpoint or model.weights, not both")
        saved = read_upstream_checkpoint(checkpoint) if checkpoint is not None else None
        if saved is not None:
            saved_backbone = saved.get("hyper_parameters", {}).get("backbone")
            if backbone is not None and saved_backbone is not None and backbone != saved_backbone:
                raise ValueError(f"model.backbone={backbone!r} but {checkpoint} holds a {saved_backbone!r}; drop model.backbone")
            backbone = backbone or saved_backbone
        if backbone is None:
            raise ValueError("set model.backbone (a timm name) or model.checkpoint (a checkpoint of this project)")
        super().__init__(backbone, num_classes, channels_last=channels_last)
        self.save_hyperparameters()
        if saved is not None:
            state = {k[len("model."):]: v for k, v in saved["state_dict"].items() if k.startswith("model.")}
            own = self.model.state_dict()
            wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
            if wrong:
                raise ValueError(f"{checkpoint}: {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, the model's "
                                 f"{tuple(own[wrong[0]].shape)}; the checkpoint was trained on another class list")
            self.model.load_state_dict(state)  # strict: every weight, head included
        elif weights is not None:
            load_backbone_weights(self.model, weights, with_head=True)

    def configure_optimizers(self):
        raise RuntimeError("EvaluationModule only evaluates: run `python train.py test` (or validate), not fit")
