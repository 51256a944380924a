"""Shared checks every network's test runs (in the manner of diffusers' ``ModelTesterMixin``).

A test class sets ``model_class``, ``init_kwargs`` (tiny widths) and ``inputs(batch, seed)``
(the positional forward arguments) and inherits: output shapes, a round trip through a real
checkpoint (``training.checkpoint``: model.json + safetensors), determinism (same seed, same
weights and outputs) and bf16 autocast close to fp32. ``output(result)`` picks the tensor to
compare when ``forward`` returns several.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import pytest
import torch

from posetransfer.errors import ConfigError, ModelConfigError
from posetransfer.training.checkpoint import load_networks, save_checkpoint
from posetransfer.training.config import complete_kwargs


class ModelTesterMixin:
    model_class: ClassVar[type[torch.nn.Module]]
    init_kwargs: ClassVar[dict[str, Any]] = {}
    #: (B, C, H, W) of ``output(forward(*inputs(B)))``, with B the batch size
    output_shape: ClassVar[tuple[int, ...]]
    #: relative bf16 tolerance (of the fp32 output's largest magnitude)
    bf16_tolerance: ClassVar[float] = 0.05
    #: a constructor argument value that must be rejected with a ModelConfigError
    bad_kwargs: ClassVar[dict[str, Any] | None] = None

    def inputs(self, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    @staticmethod
    def output(result: Any) -> torch.Tensor:
        return result

    def build(self, seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        return self.model_class(**self.init_kwargs).eval()

    def run(self, model: torch.nn.Module, batch: int = 2, seed: int = 0) -> torch.Tensor:
        with torch.no_grad():
            return self.output(model(*self.inputs(batch, seed)))

    def test_output_shape(self):
        for batch in (1, 2):
            assert tuple(self.run(self.build(), batch).shape) == (batch, *self.output_shape)

    def test_round_trip_through_a_checkpoint(self, tmp_path):
        model = self.build()
        kwargs = json.loads(json.dumps(complete_kwargs(self.model_class, self.init_kwargs)))  # as model.json holds them
        save_checkpoint(tmp_path, 1, {"net": model}, {"net": kwargs}, {"net"}, {}, {"step": 1}, "test")
        nets, _ = load_networks(tmp_path / "checkpoints" / "step_0000001")
        loaded = nets["net"].eval()
        assert type(loaded) is self.model_class
        assert torch.equal(self.run(loaded), self.run(model))

    def test_deterministic(self):
        a, b = self.build(seed=3), self.build(seed=3)
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
        assert torch.equal(self.run(a), self.run(b))
        assert not torch.equal(self.run(a, seed=0), self.run(a, seed=1))  # the inputs matter

    def test_bf16_autocast_close_to_fp32(self):
        model = self.build()
        reference = self.run(model)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = self.run(model)
        assert low.dtype == torch.bfloat16 and low.shape == reference.shape
        scale = reference.abs().max().item()
        assert (low.float() - reference).abs().max().item() <= self.bf16_tolerance * max(scale, 1e-6)

    def test_bad_constructor_argument_is_a_model_config_error(self):
        if self.bad_kwargs is None:
            pytest.skip("no invalid argument listed for this network")
        with pytest.raises(ModelConfigError) as info:
            self.model_class(**{**self.init_kwargs, **self.bad_kwargs})
        assert isinstance(info.value, ConfigError) and isinstance(info.value, ValueError)
