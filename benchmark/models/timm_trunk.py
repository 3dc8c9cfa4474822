"""Any timm model as a trunk: ``model.trunk: timm:<name>`` (``<name>`` as timm spells it, tag optional).

The model is built without its classifier. ``feature_map`` is timm's ``forward_features`` when that is
an NCHW map (CNNs), and ``pool`` timm's own head up to the classifier (``forward_head(pre_logits=True)``:
its global pooling, and its head norm where it has one). Models whose features are tokens or NHWC
(vision transformers, Swin) give their pooled features as a 1 x 1 map, which ``pool`` flattens. The
first layer converts the harness's ImageNet-normalised input to the mean and std of the model's
pretrained config (``InputRenormalisation``; left out when they are ImageNet's). Models whose config
fixes the input size (vision transformers) are built with timm's ``dynamic_img_size`` and
``dynamic_img_pad`` where they take them (position embeddings resampled to the input's patch grid,
the input padded to whole patches), so that they run on the protocol's 227 x 227 crops.

Pretrained weights come only from files already on disk, through timm's own loading
(``load_pretrained`` with the file, so its checkpoint filters apply, then a strict load): the file named
by ``model.weights``, else the model's Hugging Face hub repo in the hub cache
(``huggingface_hub.constants.HF_HUB_CACHE``; ``model.safetensors`` or ``pytorch_model.bin``, or the file
the config names), else its download URL's file in torch's hub cache (``torch.hub.get_dir()/checkpoints``).
Nothing is downloaded: a missing file is a one-line error that names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

import torch
from torch import nn

from benchmark.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from benchmark.errors import ConfigError
from benchmark.models.input_norm import InputRenormalisation
from benchmark.models.names import TIMM_PREFIX, check_timm_name, check_weights_file
from benchmark.models.trunk_base import Trunk, TrunkBuilder, register_trunk

#: Files of a timm model's Hugging Face repo, in the order timm's own loader tries them.
HF_FILES = ("model.safetensors", "pytorch_model.bin")


def pretrained_config(name: str) -> dict[str, Any]:
    """timm's pretrained config of ``name`` (its default tag when it has none); {} when timm has none."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    return cfg.to_dict() if cfg is not None else {}


def _hf_candidates(cfg: dict) -> list[str]:
    name = cfg.get("hf_hub_filename")
    if not name:
        return list(HF_FILES)
    safe = "open_clip_model.safetensors" if name == "open_clip_pytorch_model.bin" else (
        name[:-4] + ".safetensors" if name.endswith(".bin") else None)
    return [safe, name] if safe else [name]


def cached_weights(name: str) -> tuple[Optional[Path], list[str]]:
    """``(the cached weights file or None, the places looked at)`` for timm model ``name``."""
    cfg = pretrained_config(name)
    looked: list[str] = []
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import constants, try_to_load_from_cache

        repo, _, revision = hub_id.partition("@")
        files = _hf_candidates(cfg)
        for filename in files:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found), looked
        looked.append(f"{' or '.join(files)} of Hugging Face repo {repo} in {constants.HF_HUB_CACHE}")
    url = cfg.get("url")
    if url:
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        if path.is_file():
            return path, looked
        looked.append(str(path))
    return None, looked


def find_weights(name: str, weights: Optional[str]) -> Path:
    """The weights file of timm model ``name``: ``weights`` (``model.weights``) or a cached one, else ConfigError."""
    if weights:
        return check_weights_file(weights, "model.weights")
    path, looked = cached_weights(name)
    if path is not None:
        return path
    if not looked:
        raise ConfigError(f"timm has no pretrained weights for {name!r}: name a file with model.weights or set "
                          f"model.pretrained: false")
    hub = pretrained_config(name).get("hf_hub_id")
    fetch = f"`hf download {hub.partition('@')[0]}`" if hub else "timm.create_model(name, pretrained=True)"
    raise ConfigError(f"no cached weights for timm model {name!r}: expected {'; or '.join(looked)} (nothing is "
                      f"downloaded here: fetch them once with network, e.g. {fetch}, name a file with "
                      f"model.weights, or set model.pretrained: false)")


class TimmTrunk(Trunk):
    """A timm model without its classifier (see the module docstring); ``name`` without the prefix."""

    def __init__(self, model: nn.Module, name: str, *, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 input_size: tuple[int, int] = (224, 224)) -> None:
        super().__init__()
        self.name = name
        transform = InputRenormalisation(mean, std)
        self.input_transform = None if transform.is_identity() else transform
        self.model = model
        was_training = model.training
        model.eval()
        with torch.no_grad():  # is the output of forward_features an NCHW map? and how wide is the pooled one?
            probe = torch.zeros(1, 3, *input_size, dtype=next(model.parameters()).dtype)
            fmap = model.forward_features(probe)
            self.spatial = fmap.dim() == 4 and getattr(model, "output_fmt", "NCHW") == "NCHW"
            pooled = model.forward_head(fmap, pre_logits=True)
        model.train(was_training)
        self.out_dim = int(pooled.shape[1])
        self._channels = int(fmap.shape[1]) if self.spatial else self.out_dim

    @property
    def label(self) -> str:
        return TIMM_PREFIX + self.name

    @property
    def channels(self) -> int:
        return self._channels

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_transform is not None:
            x = self.input_transform(x)
        features = self.model.forward_features(x)
        if self.spatial:
            return features
        return self.model.forward_head(features, pre_logits=True)[:, :, None, None]

    def pool(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(fmap, pre_logits=True) if self.spatial else fmap.flatten(1)


def _create(name: str, cfg: dict, **kwargs) -> nn.Module:
    """``timm.create_model``; a fixed-size model that takes them gets ``dynamic_img_size`` and ``dynamic_img_pad``."""
    import timm

    if cfg.get("fixed_input_size"):
        try:
            return timm.create_model(name, dynamic_img_size=True, dynamic_img_pad=True, **kwargs)
        except TypeError:  # the model has no such option
            pass
    return timm.create_model(name, **kwargs)


def timm_trunk(trunk: str, *, pretrained: bool, weights: Optional[str] = None) -> TimmTrunk:
    """The trunk ``timm:<name>``, with weights from ``find_weights`` when ``pretrained`` (else random)."""
    check_timm_name(trunk, "model.trunk")
    name = trunk[len(TIMM_PREFIX):]
    cfg = pretrained_config(name)
    if pretrained:
        path = find_weights(name, weights)
        # the file as the only source; custom_load (timm's own .npz reader) only for such files
        overlay = {"file": str(path), "source": "", "custom_load": bool(cfg.get("custom_load")) and
                   path.suffix == ".npz"}
        try:  # with its classifier, so that timm loads strictly; the classifier is dropped after
            model = _create(name, cfg, pretrained=True, pretrained_cfg_overlay=overlay)
        except (RuntimeError, OSError, ValueError, KeyError, AssertionError) as exc:
            said = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
            raise ConfigError(f"could not load the weights of timm model {name!r} from {path} "
                              f"({type(exc).__name__}: {said[:240]})") from None
    else:
        model = _create(name, cfg, pretrained=False)
    model.reset_classifier(0)
    size = tuple(cfg.get("input_size") or (3, 224, 224))[1:]
    return TimmTrunk(model, name, mean=cfg.get("mean") or IMAGENET_MEAN, std=cfg.get("std") or IMAGENET_STD,
                     input_size=size)


register_trunk(TrunkBuilder(prefix=TIMM_PREFIX, build=timm_trunk,
                            find_weights=lambda name, weights: find_weights(name[len(TIMM_PREFIX):], weights)))
