"""The trunk names a config may give (``model.trunk``) and the checks of the model section's names and files.

Built-in trunks are ``TRUNKS``; ``timm:<name>`` is any model timm knows (an architecture, optionally
with one of its pretrained tags: ``timm:resnet50.a1_in1k``). ``model.weights`` names a weights file for
the trunks that read one (``WEIGHTS_TRUNKS`` and every timm trunk). Each check raises ``ConfigError``
with one line naming the key. Nothing here imports torch, and timm only for a ``timm:`` name.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Optional

from benchmark.errors import ConfigError

TRUNKS = ("small_cnn", "resnet50", "googlenet", "bn_inception")
TIMM_PREFIX = "timm:"
#: Built-in trunks whose pretrained weights may come from a file named by ``model.weights``.
WEIGHTS_TRUNKS = ("bn_inception",)


def check_trunk_name(name: str, path: str) -> None:
    """``name`` is a built-in trunk or ``timm:<a model timm knows>``; else ConfigError naming ``path``."""
    if name in TRUNKS:
        return
    if name.startswith(TIMM_PREFIX):
        check_timm_name(name, path)
        return
    raise ConfigError(f"config key {path!r} must be one of {TRUNKS} or timm:<model name>, got {name!r}")


def check_timm_name(name: str, path: str) -> None:
    """``name`` is ``timm:<model>`` with a model (and tag, if any) that the installed timm knows."""
    model = name[len(TIMM_PREFIX):]
    try:
        import timm
        from timm.models import get_pretrained_cfg, split_model_name_tag
    except ImportError:
        raise ConfigError(f"config key {path!r}: {name!r} needs timm, which is not installed "
                          f"(pip install timm, or dml-bench[timm])") from None
    if not model or not timm.is_model(model):
        close = difflib.get_close_matches(model, timm.list_models(), n=3) if model else []
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see timm.list_models())"
        raise ConfigError(f"config key {path!r}: {model!r} is not a timm model{hint}")
    arch, tag = split_model_name_tag(model)
    if tag:
        try:
            get_pretrained_cfg(model)
        except RuntimeError:
            tags = [t.split(".", 1)[1] for t in timm.list_pretrained(arch + ".*")]
            raise ConfigError(f"config key {path!r}: timm model {arch!r} has no pretrained tag {tag!r} "
                              f"(it has {', '.join(tags[:8]) or 'none'})") from None


def check_weights_file(weights: str, path: str) -> Path:
    """``weights`` is an existing file (``~`` expanded); returns its path."""
    file = Path(weights).expanduser()
    if not file.is_file():
        raise ConfigError(f"config key {path!r}: no file at {file}" +
                          (" (it is a folder)" if file.is_dir() else ""))
    return file


def check_weights_key(trunk: str, weights: Optional[str], pretrained: bool, path: str) -> None:
    """``model.weights`` (``path``): unset, or an existing file for a pretrained trunk that reads one."""
    if weights is None:
        return
    if trunk not in WEIGHTS_TRUNKS and not trunk.startswith(TIMM_PREFIX):
        raise ConfigError(f"config key {path!r} is read by the {', '.join(WEIGHTS_TRUNKS)} and timm:<name> trunks "
                          f"only, not {trunk!r}")
    if not pretrained:
        raise ConfigError(f"config key {path!r} names a weights file but model.pretrained is false")
    check_weights_file(weights, path)
