"""How the training step runs on its device: mixed precision, memory layout, compilation.

Three keys of ``TrainingConfig``, resolved for the device by ``resolve_precision``:

* ``amp`` (``auto``, ``fp32``, ``bf16``, ``fp16``): the forward pass and the loss under
  ``torch.autocast`` in that dtype; ``fp16`` also scales the loss with a ``torch.amp.GradScaler``
  (bf16 has fp32's range and needs none). ``auto`` is bf16 on a CUDA device that supports it, fp16
  on one that does not, and fp32 (no autocast) on a CPU. An explicit bf16 or fp16 is honoured on a
  CPU too (torch's CPU autocast; useful for tests, seldom faster). Backward, the optimizer step,
  validation and the methods' epoch hooks run outside autocast.
* ``memory_format`` (``auto``, ``channels_last``, ``contiguous``): the model's and the images' layout;
  ``auto`` is channels-last on CUDA (faster convolutions with tensor cores), contiguous on a CPU.
* ``compile`` (false): ``torch.compile`` the model's forward (``nn.Module.compile``: the state dict
  keeps its keys). Parts that a method's own step calls directly (DCML's ``trunk.feature_map``) stay eager.

With the defaults a CPU run is exactly what it was before these keys existed (no autocast, no
layout change, no compilation).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ContextManager, Optional

import torch
from torch import nn

from benchmark.config import TrainingConfig
from benchmark.errors import ConfigError

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: ``training.amp`` and ``training.memory_format`` values (checked by ``benchmark.training.checks``).
AMP_MODES = ("auto", "fp32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
#: ``torch.compile`` backend (tests swap in ``eager`` to check the wiring without a C++ compiler).
COMPILE_BACKEND = "inductor"


@dataclass(frozen=True)
class Precision:
    """The resolved settings of one fold's training step."""

    device_type: str
    #: The autocast dtype (None: fp32, no autocast).
    dtype: Optional[torch.dtype] = None
    channels_last: bool = False
    compile: bool = False

    @property
    def scales_loss(self) -> bool:
        """fp16 needs a grad scaler (its range is too narrow for small gradients)."""
        return self.dtype == torch.float16

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.preserve_format

    def autocast(self) -> ContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def grad_scaler(self) -> Optional[torch.amp.GradScaler]:
        return torch.amp.GradScaler(self.device_type) if self.scales_loss else None

    def prepare(self, model: nn.Module) -> nn.Module:
        """``model`` (already on its device) in the step's layout, its forward compiled if asked; in place."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if self.compile:
            model.compile(backend=COMPILE_BACKEND)
        return model


def resolve_precision(cfg: TrainingConfig, device: torch.device, key: str = "training") -> Precision:
    """The step's settings for ``device`` (see the module docstring); a dtype the device lacks is a ConfigError."""
    cuda = device.type == "cuda"
    amp = cfg.amp
    if amp == "auto":
        amp = ("bf16" if _bf16_supported(device) else "fp16") if cuda else "fp32"
    elif amp == "bf16" and cuda and not _bf16_supported(device):
        raise ConfigError(f"config key '{key}.amp' is bf16, but {device} does not support bfloat16 (use fp16 or auto)")
    channels_last = cfg.memory_format == "channels_last" or (cfg.memory_format == "auto" and cuda)
    return Precision(device.type, DTYPES.get(amp), channels_last, bool(cfg.compile))


def _bf16_supported(device: torch.device) -> bool:
    """Whether the CUDA ``device`` computes in bfloat16 (CUDA only)."""
    with torch.cuda.device(device):
        return torch.cuda.is_bf16_supported()
