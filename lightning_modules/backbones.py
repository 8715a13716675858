"""Backbones: any timm model by name, plus tiny BiT ResNetV2s for CPU work.

The tiny variants keep BiT's design (pre-activation ResNetV2, GroupNorm + Weight
Standardization in every conv, the fixed-padding stem) and its scaling step from R50x1 to
R101x3: the larger one is deeper in the third stage and 3x wider. GroupNorm uses 8 groups
instead of 32 because the narrowest tiny layers have only 8 channels.

| name                  | stages  | widths               | params (10 classes) |
| --------------------- | ------- | -------------------- | ------------------- |
| resnetv2_tiny_bit     | 1,1,1,1 | 32, 64, 128, 256     | ~0.13M              |
| resnetv2_tinyx3_bit   | 1,1,2,1 | 96, 192, 384, 768    | ~1.3M               |

Weight files load from local paths only: ``.safetensors``, ``.pth``/``.pt``/``.ckpt``
(``torch.load(weights_only=True)``) or BiT's ``.npz`` release files.
"""
from __future__ import annotations

import inspect
from functools import partial
from pathlib import Path

import timm
import torch
from timm.layers import GroupNormAct, StdConv2d
from timm.models import register_model
from timm.models.resnetv2 import ResNetV2

from lightning_modules.safe_load import load_plain


def _tiny_bit(layers: list[int], channels: tuple[int, ...], stem_chs: int, **kwargs) -> ResNetV2:
    # timm's factory passes hub/cache options meant for pretrained weights; the tiny models have none.
    accepted = inspect.signature(ResNetV2.__init__).parameters
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    return ResNetV2(
        layers=layers, channels=channels, stem_chs=stem_chs, stem_type="fixed",
        norm_layer=partial(GroupNormAct, num_groups=8), conv_layer=partial(StdConv2d, eps=1e-8), **kwargs,
    )


@register_model
def resnetv2_tiny_bit(pretrained: bool = False, **kwargs) -> ResNetV2:
    """~0.1M-parameter BiT-style ResNetV2 (the R50x1 of the miniature study)."""
    return _tiny_bit([1, 1, 1, 1], (32, 64, 128, 256), 16, **kwargs)


@register_model
def resnetv2_tinyx3_bit(pretrained: bool = False, **kwargs) -> ResNetV2:
    """~1M-parameter BiT-style ResNetV2: deeper third stage, 3x wider (the R101x3 of the miniature)."""
    return _tiny_bit([1, 1, 2, 1], (96, 192, 384, 768), 48, **kwargs)


def create_backbone(name: str, num_classes: int) -> torch.nn.Module:
    """A timm model by registry name with a ``num_classes``-way head; never downloads."""
    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    except RuntimeError as err:  # timm raises RuntimeError for unknown names
        raise ValueError(f"unknown backbone {name!r}: use a timm model name (timm.list_models()) or resnetv2_tiny_bit / resnetv2_tinyx3_bit") from err


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a local weight file, loaded without executing code (safetensors or weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file {path} not found (weights load from local paths only)")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = load_plain(path)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    return state


def load_backbone_weights(model: torch.nn.Module, path: str | Path, prefix: str = "", with_head: bool = False) -> list[str]:
    """Load ``path`` into ``model`` except the classifier head; returns the head keys skipped.

    ``prefix`` is stripped from the file's keys (Lightning checkpoints store ``model.``).
    BiT ``.npz`` files go through timm's BiT loader. Any other missing key is an error.
    ``with_head=True`` (evaluating a trained classifier) loads the head too and refuses a
    file whose head does not have the model's number of outputs.
    """
    path = Path(path)
    head = model.get_classifier()
    if path.suffix == ".npz":
        saved = {k: v.clone() for k, v in head.state_dict().items()}
        try:
            model.load_pretrained(str(path))  # timm's BiT npz reader (ResNetV2 only)
        except (KeyError, RuntimeError, ValueError) as err:
            raise ValueError(f"{path} does not match the backbone ({type(err).__name__}: {err}); is it a BiT ResNetV2 of this size?") from err
        if with_head:
            return []
        head.load_state_dict(saved)
        return [f"head.fc.{k}" for k in saved]
    state = {k[len(prefix):]: v for k, v in read_state_dict(path).items() if k.startswith(prefix)}
    own = model.state_dict()
    skipped = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if with_head and skipped:
        raise ValueError(f"{path}: {skipped[0]} has shape {tuple(state[skipped[0]].shape)}, the model's {tuple(own[skipped[0]].shape)}; "
                         f"the file's head has another number of classes than the data's class list")
    for k in skipped:
        del state[k]
    missing, unexpected = model.load_state_dict(state, strict=False)
    head_names = set() if with_head else {n for n, _ in head.named_parameters(prefix="head.fc")} | set(skipped)
    real_missing = [k for k in missing if k not in head_names and (with_head or not k.startswith("head."))]
    if real_missing or unexpected:
        raise ValueError(f"{path} does not match the backbone: missing {real_missing[:3]}, unexpected {unexpected[:3]}")
    return skipped
