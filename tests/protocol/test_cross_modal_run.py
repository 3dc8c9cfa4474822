"""A paired-features file through the real CLI: the whole protocol, results per direction, zero-shot accuracy; its
bad inputs and methods without a cross-modal mode refused in one line with nothing written."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.protocol.cross_modal import paired_directions
from tests.data.test_paired_features import paired_arrays
from tests.test_bad_inputs import listing

CONFIG = """\
name: pairs-run
methods: [{methods}]
datasets: [{{name: paired_features, label: pairs, root: {root}}}]
model: {{embedding_dim: 8, tower_hidden: 16}}
training: {{batch_size: 8, m_per_class: 2, iterations_per_epoch: 10, max_epochs: 3, val_interval: 1, patience: 3,
           optimizer: adam, lr_embedder: 0.01, threads: 1}}
protocol: {{n_folds: 2, n_trials: 2, n_repeats: 2, n_startup_trials: 1}}
evaluation: {{recall_at: [1, 2], verification_far: null}}
"""


def _write(tmp_path, methods="bidirectional_triplet, proxy_anchor", **arrays):
    data = paired_arrays(classes=16, per_a=4, per_b=2)
    data.update(arrays)
    np.savez(tmp_path / "pairs.npz", **data)
    (tmp_path / "c.yaml").write_text(CONFIG.format(methods=methods, root=tmp_path / "pairs.npz"))
    return ["run", "--config", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"), "--no-progress"]


def test_a_paired_features_file_runs_end_to_end_with_results_per_direction(tmp_path, capsys):
    assert main(_write(tmp_path)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "# pairs.a-to-b" in out and "# pairs.b-to-a" in out
    results = pd.read_csv(tmp_path / "run" / "results.csv")
    assert set(results["dataset"]) == {"pairs.a-to-b", "pairs.b-to-a"}
    assert set(results["method"]) == {"pretrained", "bidirectional_triplet", "proxy_anchor"}
    assert set(results["embedding"]) == {"fold0", "fold1", "concatenated"}
    aggregate = pd.read_csv(tmp_path / "run" / "tables" / "aggregate.csv")
    zero_shot = aggregate[aggregate["metric"] == "zero_shot_accuracy"]
    assert set(zero_shot["dataset"]) == {"pairs.a-to-b", "pairs.b-to-a"}
    assert set(zero_shot["method"]) == {"pretrained", "bidirectional_triplet", "proxy_anchor"}
    trained = zero_shot[(zero_shot["method"] != "pretrained") & (zero_shot["embedding"] == "concatenated")]
    assert (trained["mean"] > 1 / 8).all()  # 8 test classes: above chance on this easy latent
    tex = (tmp_path / "run" / "tables" / "pairs.b-to-a.tex").read_text()
    assert "b-to-a" in tex
    both = (tmp_path / "run" / "tables" / "pairs_cross_modal.tex").read_text()  # one table, both directions
    assert "\\emph{a-to-b" in both and "\\emph{b-to-a" in both and "Zero-shot acc." in both
    if shutil.which("pdflatex"):
        doc = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\begin{document}\n"
               + both + "\\end{document}\n")
        (tmp_path / "t.tex").write_text(doc)
        proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout[-2000:]
    trials = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert set(trials["dataset"]) == {"pairs"} and trials["value"].between(0, 1).all()


@pytest.mark.parametrize("arrays, methods, expect", [
    ({"labels_b": np.repeat(np.arange(1, 17), 2)}, "bidirectional_triplet",
     ("pairs.npz", "keys 'labels_a' and 'labels_b'", "only in A, e.g. [0]", "only in B, e.g. [16]")),
    ({"features_b": np.zeros((32, 6, 1), np.float32)}, "bidirectional_triplet",
     ("pairs.npz", "key 'features_b'", "N x D", "(32, 6, 1)")),
    ({"labels_a": np.arange(63)}, "bidirectional_triplet", ("pairs.npz", "key 'labels_a'", "one label per row")),
    ({}, "bidirectional_triplet, dcml", ("config key 'methods'", "'dcml' has no cross-modal mode", "datasets[0]")),
], ids=["mismatched_classes", "wrong_shape", "labels_short", "method_without_cross_modal_mode"])
def test_bad_paired_inputs_are_refused_in_one_line_with_nothing_written(tmp_path, capsys, monkeypatch, arrays,
                                                                         methods, expect):
    monkeypatch.chdir(tmp_path)
    argv = _write(tmp_path, methods, **arrays)
    before = listing(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for text in expect:
        assert text in lines[0], (text, lines[0])
    assert listing(tmp_path) == before


def test_a_cross_modal_loss_on_a_single_modality_dataset_is_refused(tmp_path, capsys):
    assert main(["run", "--preset", "smoke", "--methods", "bidirectional_triplet", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config key 'methods': 'bidirectional_triplet' is a cross-modal loss") and \
        "\n" not in err
    assert not (tmp_path / "r").exists()


def test_paired_directions_finds_both_directions_of_a_paired_dataset_only():
    names = ["cub.image-to-attributes", "cub.attributes-to-image", "sop", "x.a-to-b", "my.labels"]
    assert paired_directions(names) == {"cub": ("cub.attributes-to-image", "cub.image-to-attributes")}
