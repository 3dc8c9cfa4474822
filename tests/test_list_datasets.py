"""List-file datasets through the real CLI: an OML df.csv with a DML split runs end to end with query/gallery
metrics; one with the classification split is refused with one line, exit 2, nothing written."""

from __future__ import annotations

import pandas as pd

from benchmark.cli import main
from tests.data.fixtures import make_oml

CONFIG = """\
name: oml-e2e
methods: [contrastive]
device: cpu
model: {{trunk: small_cnn, pretrained: false, embedding_dim: 16}}
datasets:
  - name: oml
    root: {root}
    image_root: {image_root}
    options: {{image_size: 32, resize: 36}}
training: {{batch_size: 4, m_per_class: 2, iterations_per_epoch: 2, max_epochs: 1, val_interval: 1}}
protocol: {{n_folds: 2, n_trials: 1, n_repeats: 1}}
evaluation: {{recall_at: [1, 2]}}
"""


def _config(tmp_path, **kwargs):
    root = make_oml(tmp_path / "lists" / "df.csv", n_classes=8, per_class=4, image_dir=tmp_path / "store" / "images",
                    image_root=tmp_path / "store", **kwargs)
    (tmp_path / "c.yaml").write_text(CONFIG.format(root=root, image_root=tmp_path / "store"))
    return tmp_path / "c.yaml"


def test_dml_split_runs_end_to_end_with_query_gallery_metrics(tmp_path, capsys):
    config = _config(tmp_path)
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
    results = pd.read_csv(out / "results.csv")
    test = results[results.method == "contrastive"]
    assert set(test.dataset) == {"oml"}
    assert {"precision_at_1", "map_at_r", "recall_at_2"} <= set(test.metric)
    # query/gallery evaluation: the norm-P@1 correlation of test-set-against-itself evaluation is not computed
    assert not any(m.startswith("kappa_") for m in test.metric)
    # per-category metrics of the df.csv's category column, in results and in a table of their own
    assert {"map_at_r@shoes", "map_at_r@bags", "precision_at_1@shoes"} <= set(test.metric)
    table = (out / "tables" / "oml.md").read_text()
    assert "## MAP@R per category" in table and "MAP@R [shoes]" in table
    main_table = table.split("## MAP@R per category")[0]
    assert "[shoes]" not in main_table  # not among the other metrics


def test_classification_split_is_refused_before_anything_is_written(tmp_path, capsys):
    config = _config(tmp_path, split="classification")
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is in both splits" in err and "class_split: first_half" in err
    assert sorted(p for p in tmp_path.rglob("*")) == before
