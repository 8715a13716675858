"""``model.compile``: the backbone goes through torch.compile in place, checkpoints keep their names."""
from __future__ import annotations

import lightning_modules.backbones  # noqa: F401 - registers the tiny models
from lightning_modules.pretrain import PretrainModule


def test_compile_is_in_place_and_keeps_parameter_names():
    eager = PretrainModule("resnetv2_tiny_bit", num_classes=4)
    compiled = PretrainModule("resnetv2_tiny_bit", num_classes=4, compile=True)
    compiled.configure_model()
    compiled.configure_model()  # Lightning may call it again (e.g. after a restore): compiled once
    assert compiled.model._compiled_call_impl is not None and eager.model._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no "_orig_mod." prefix
