"""Mixed precision, memory layout and compilation of the training step: resolution per device, and the step's
mechanics on a CPU (bf16 and fp16 autocast, the fp16 grad scaler and when it means divergence)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from benchmark.config import TrainingConfig
from benchmark.errors import ConfigError
from benchmark.methods import Method
from benchmark.models.embedding_model import EmbeddingModel
from benchmark.models.trunks import SmallCNN
from benchmark.training import divergence, precision, trainer
from benchmark.training.precision import Precision, resolve_precision
from tests.training.test_trainer import ConstantLoss, ConstantLossTrainable, cfg, tiny_set

CPU = torch.device("cpu")


def test_cpu_defaults_are_fp32_contiguous_and_eager():
    p = resolve_precision(TrainingConfig(), CPU)
    assert p == Precision("cpu", dtype=None, channels_last=False, compile=False)
    assert isinstance(p.autocast(), contextlib.nullcontext) and p.grad_scaler() is None
    assert p.memory_format is torch.preserve_format


@pytest.mark.parametrize("bf16, dtype", [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_on_cuda_is_bf16_where_supported_else_fp16_with_a_scaler(monkeypatch, bf16, dtype):
    monkeypatch.setattr(precision, "_bf16_supported", lambda device: bf16)
    p = resolve_precision(TrainingConfig(), torch.device("cuda"))
    assert p.dtype == dtype and p.scales_loss == (dtype == torch.float16)
    assert p.channels_last and not p.compile
    assert resolve_precision(TrainingConfig(amp="fp32", memory_format="contiguous"), torch.device("cuda")) == \
        Precision("cuda")


def test_bf16_on_a_cuda_device_without_it_is_a_config_error(monkeypatch):
    monkeypatch.setattr(precision, "_bf16_supported", lambda device: False)
    with pytest.raises(ConfigError, match=r"'datasets\[0\].training.amp' is bf16, but cuda:1 does not support"):
        resolve_precision(TrainingConfig(amp="bf16"), torch.device("cuda:1"), key="datasets[0].training")


def test_explicit_settings_are_honoured_on_a_cpu():
    p = resolve_precision(TrainingConfig(amp="fp16", memory_format="channels_last", compile=True), CPU)
    assert p == Precision("cpu", dtype=torch.float16, channels_last=True, compile=True)
    assert isinstance(p.grad_scaler(), torch.amp.GradScaler)
    assert resolve_precision(TrainingConfig(amp="bf16"), CPU).dtype == torch.bfloat16


# -- the step on a CPU ----------------------------------------------------------------------------
def train(config, method=None, **kw):
    data = tiny_set()
    torch.manual_seed(0)
    model = EmbeddingModel(SmallCNN(width=4), 8)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    model, result = trainer.train_fold(model=model, method=method or ConstantLossTrainable(), train_set=data,
                                       train_eval_set=data, val_set=data, cfg=config, device=CPU, seed=0,
                                       m_per_class=2, progress=False, **kw)
    return initial, model, result


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_cpu_step_is_unchanged_with_the_keys_at_their_defaults_or_off():
    _, default, curve = train(cfg(max_epochs=2))
    _, off, off_curve = train(cfg(max_epochs=2, amp="fp32", memory_format="contiguous", compile=False))
    assert same_weights(default.state_dict(), off.state_dict()) and curve == off_curve


class Recorder(Method):
    """Records, at each step, the embeddings' dtype and whether the images came channels-last."""

    def __init__(self):
        super().__init__()
        self.dtypes, self.channels_last = [], []

    def training_step(self, model, images, labels, indices):
        self.channels_last.append(images.is_contiguous(memory_format=torch.channels_last))
        embeddings = model(images)
        self.dtypes.append(embeddings.dtype)
        return embeddings.float().pow(2).mean()


def test_bf16_autocast_covers_the_step_but_not_validation(monkeypatch):
    autocast_in_validation = []
    validate = trainer.validate

    def spy(*args, **kwargs):
        autocast_in_validation.append(torch.is_autocast_enabled("cpu"))
        return validate(*args, **kwargs)

    monkeypatch.setattr(trainer, "validate", spy)
    method = Recorder()
    initial, model, result = train(cfg(max_epochs=2, amp="bf16"), method)
    assert method.dtypes == [torch.bfloat16] * 4 and autocast_in_validation == [False, False]
    assert result.status == trainer.COMPLETED and all(v.dtype == torch.float32 for v in model.state_dict().values()
                                                      if v.is_floating_point())
    assert not same_weights(initial, model.state_dict())
    _, fp32, _ = train(cfg(max_epochs=2))
    assert not same_weights(fp32.state_dict(), model.state_dict())  # the flag changed the arithmetic


def test_channels_last_reaches_the_model_and_the_images():
    method = Recorder()
    _, model, _ = train(cfg(max_epochs=1, memory_format="channels_last"), method)
    assert method.channels_last == [True, True]
    assert model.trunk.body[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    _, plain, _ = train(cfg(max_epochs=1))
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(model.state_dict().values(),
                                                               plain.state_dict().values()))


class InfiniteGradient(torch.autograd.Function):
    """Identity forward, infinite gradient: the loss is finite but no fp16 step can ever be taken."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


class Overflowing(Method):
    def training_step(self, model, images, labels, indices):
        return InfiniteGradient.apply(model(images)).float().pow(2).mean()


def test_fp16_skips_overflowing_steps_and_diverges_once_the_scale_gives_up():
    # scale 2^16 halved at every skipped step: the 24th step brings it to 2^-8 = MIN_GRAD_SCALE
    assert divergence.MIN_GRAD_SCALE == 2.0 ** -8
    initial, model, result = train(cfg(max_epochs=1, iterations_per_epoch=40, amp="fp16"), Overflowing())
    assert result.status == trainer.DIVERGED and result.iterations == 23 and result.curve == []
    assert same_weights(initial, model.state_dict())  # no step was taken


def test_fp16_steps_normally_and_a_non_finite_loss_still_diverges(monkeypatch):
    initial, model, result = train(cfg(max_epochs=2, amp="fp16"))
    assert result.status == trainer.COMPLETED and result.iterations == 4
    assert not same_weights(initial, model.state_dict())
    scores = iter([0.3, 0.2])
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: next(scores))
    _, _, result = train(cfg(amp="fp16"), ConstantLoss([1.0, 1.0, 1.0, float("nan")]))
    assert result.status == trainer.DIVERGED and result.iterations == 3 and result.best_value == 0.3


def test_compile_wraps_the_forward_and_keeps_the_state_dict(monkeypatch):
    monkeypatch.setattr(precision, "COMPILE_BACKEND", "eager")  # dynamo's graph capture without a C++ toolchain
    _, compiled, compiled_result = train(cfg(max_epochs=1, compile=True))
    _, eager, eager_result = train(cfg(max_epochs=1))
    assert compiled._compiled_call_impl is not None and eager._compiled_call_impl is None
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(compiled.state_dict().values(),
                                                               eager.state_dict().values()))
    assert [c[:2] for c in compiled_result.curve] == [c[:2] for c in eager_result.curve] == [(1, 2)]
    assert compiled_result.curve[0][2] == pytest.approx(eager_result.curve[0][2])
