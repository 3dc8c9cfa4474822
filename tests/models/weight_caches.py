"""Test helpers: empty torch hub and Hugging Face caches under a test folder, and files written into them.

``isolate_weight_caches`` points ``TORCH_HOME`` and the Hugging Face hub cache (``HF_HUB_CACHE``, and
``huggingface_hub.constants`` when already imported, since it reads the variable at import) at empty
folders, so that a developer's own cached weights never change a test, and child processes see the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def isolate_weight_caches(monkeypatch: pytest.MonkeyPatch, root: Path) -> tuple[Path, Path]:
    """``(torch hub checkpoints folder, Hugging Face hub cache)``, both empty and not created."""
    torch_home, hf_cache = root / "torch-home", root / "hf-cache"
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:  # pragma: no cover - comes with timm
        pass
    else:
        monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hf_cache))
    assert Path(torch.hub.get_dir()) == torch_home / "hub"
    return torch_home / "hub" / "checkpoints", hf_cache


def write_hf_cached_file(hf_cache: Path, repo: str, filename: str, state: dict) -> Path:
    """``state`` saved as ``filename`` of ``repo`` in the Hugging Face cache's layout (refs/main -> snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = hf_cache / ("models--" + repo.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    path = repo_dir / "snapshots" / commit / filename
    path.parent.mkdir(parents=True)
    if filename.endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path
