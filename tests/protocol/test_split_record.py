"""``dml-bench prepare --write-manifest`` and ``datasets[].split_manifest`` through the real CLI: a copy is recorded,
a copy with a file missing or extra is refused in one line with exit 2 and nothing written."""

from __future__ import annotations

import json

from benchmark.cli import main
from tests.data.fixtures import make_cub, write_image

CONFIG = """\
name: manifest
methods: [contrastive]
device: cpu
model: {{trunk: small_cnn, pretrained: false, embedding_dim: 16}}
datasets:
  - name: cub200
    root: {root}
    options: {{image_size: 32, resize: 36}}
{extra}
training: {{batch_size: 4, m_per_class: 2, iterations_per_epoch: 2, max_epochs: 1}}
protocol: {{n_folds: 2, n_trials: 1, n_repeats: 1}}
"""


def _config(tmp_path, root, extra: str) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(root=root, extra=extra))
    return str(path)


def _listing(folder):
    return sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*"))


def test_record_then_refuse_a_copy_with_a_file_missing_or_extra(tmp_path, capsys):
    root = make_cub(tmp_path / "cub", n_classes=8, per_class=3, official_files=False)
    manifest = tmp_path / "splits.json"
    config = _config(tmp_path, root, "    verify_split: false")
    assert main(["prepare", "--config", config, "--no-progress", "--write-manifest", str(manifest)]) == 0
    assert "split manifest written to" in capsys.readouterr().out
    recorded = json.loads(manifest.read_text())["datasets"]["cub200"]
    assert recorded["dataset"] == "cub200" and recorded["parts"]["train"]["per_class"]["1"] == 3

    checked = _config(tmp_path, root, f"    split_manifest: {manifest}")
    assert main(["prepare", "--config", checked, "--no-progress"]) == 0  # the recorded copy itself passes
    capsys.readouterr()
    images = root / "CUB_200_2011" / "images"
    for damage, expect in (
            (lambda: sorted((images / "006.Bird_6").iterdir())[0].unlink(), "test class 6 has 2 images, "),
            (lambda: [write_image(images / "006.Bird_6" / f"{n}.jpg", i) for i, n in enumerate("ab")],
             "test class 6 has 4 images, "),  # (one missing, two extra)
            (lambda: (images / "006.Bird_6" / "a.jpg").unlink(), "test's sorted file list has checksum")):
        damage()
        before = _listing(tmp_path)
        code = main(["run", "--config", checked, "--out", str(tmp_path / "run"), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert code == 2, err
        assert len(err.splitlines()) == 1 and expect in err and str(manifest) in err
        assert _listing(tmp_path) == before


def test_published_totals_refuse_a_fixture_in_one_line(tmp_path, capsys):
    config = _config(tmp_path, make_cub(tmp_path / "cub", n_classes=8, per_class=3), "")
    before = _listing(tmp_path)
    assert main(["prepare", "--config", config, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: dataset 'cub200': train has 12 images, the published split (split_manifests.json) records "
                   "5864 (5852 missing); expected a complete copy (set the dataset's verify_split: false to load a "
                   "subset or a test fixture)")
    assert _listing(tmp_path) == before


def test_write_manifest_target_checked_before_any_work(tmp_path, capsys):
    root = make_cub(tmp_path / "cub", n_classes=8, per_class=3)
    config = _config(tmp_path, root, "    verify_split: false")
    before = _listing(tmp_path)
    assert main(["prepare", "--config", config, "--write-manifest", str(tmp_path / "no" / "s.json")]) == 2
    assert "folder" in capsys.readouterr().err and _listing(tmp_path) == before
