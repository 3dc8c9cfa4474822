"""The output-folder and device checks: good folders pass (new, empty, a run folder to resume), bad ones are refused."""

from __future__ import annotations

import pytest

from benchmark.errors import ConfigError, RunDirError
from benchmark.protocol.preflight import RUN_MARKER, check_device, check_output_dir, check_precision


def test_usable_output_folders_pass(tmp_path):
    check_output_dir(tmp_path / "new" / "nested" / "run")  # creatable
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty")
    (tmp_path / "hidden").mkdir()
    (tmp_path / "hidden" / ".DS_Store").write_text("")
    check_output_dir(tmp_path / "hidden")
    run = tmp_path / "run"
    run.mkdir()
    (run / RUN_MARKER).write_text("name: x\n")
    (run / "results.csv").write_text("")
    check_output_dir(run)  # a run folder is resumed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "hidden", "run"]  # nothing was created


@pytest.mark.parametrize("make, message", [
    (lambda t: (t / "f").write_text("x") and t / "f", "is a file"),
    (lambda t: (t / "f").write_text("x") and t / "f" / "sub" / "run", "f is a file, not a folder"),
    (lambda t: (t / "d").mkdir() or (t / "d" / "notes.txt").write_text("x") and t / "d", "not a run folder"),
    (lambda t: (t / "link").symlink_to(t / "gone") or t / "link", "broken symbolic link"),
])
def test_unusable_output_folders_are_refused(tmp_path, make, message):
    with pytest.raises(RunDirError, match=message):
        check_output_dir(make(tmp_path))


def test_device_check():
    import torch

    check_device("cpu")
    check_device("auto")
    with pytest.raises(ConfigError, match="'device'"):
        check_device("cuda:4096")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            check_device("cuda")


def test_precision_check_names_the_dataset_whose_amp_the_gpu_lacks(monkeypatch):
    import torch

    from benchmark.protocol import workbench
    from benchmark.protocol.run_config import assemble_config
    from benchmark.training import precision

    cfg = assemble_config({"datasets": [{"name": "builtin"}, {"name": "builtin", "label": "b",
                                                                "training": {"amp": "bf16"}}]})
    check_precision(cfg)  # on this machine's device (a CPU computes bf16)
    monkeypatch.setattr(workbench, "resolve_device", lambda name: torch.device("cuda:0"))
    monkeypatch.setattr(precision, "_bf16_supported", lambda device: False)
    with pytest.raises(ConfigError, match=r"'datasets\[1\]\.training\.amp' is bf16, but cuda:0"):
        check_precision(cfg)
    cfg = assemble_config({"training": {"amp": "bf16"}})  # configs are frozen: a new one
    with pytest.raises(ConfigError, match=r"'training\.amp' is bf16"):
        check_precision(cfg)
