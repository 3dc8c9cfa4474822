"""End to end: the smoke leaderboard through the CLI, resume after an interruption, refusal of a changed config."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.constants import RESULT_COLUMNS
from benchmark.protocol import workbench

pytestmark = pytest.mark.slow


def run(out, *extra):
    return main(["run", "--preset", "smoke", "--out", str(out), "--no-progress", *extra])


def trial_counts(out):
    trials = pd.read_csv(out / "trials.csv")
    return trials.groupby(["method", "state"]).size().to_dict()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke") / "run"
    assert run(out) == 0
    return out


def test_smoke_run_writes_everything(reference_run, capsys):
    out = reference_run
    for name in ("results.csv", "manifest.json", "trials.csv", "curves.csv", "config.resolved.yaml", "provenance.json",
                 "run.log",
                 "tables/builtin.md", "tables/builtin.tex", "tables/builtin.txt", "plots/builtin_metrics.png"):
        assert (out / name).is_file(), name
    results = pd.read_csv(out / "results.csv")
    assert tuple(results.columns) == RESULT_COLUMNS
    # pretrained (1 evaluation) + 2 methods x 2 repeats; 2 fold models + the concatenation each
    runs = results.groupby(["method", "repeat"]).ngroups
    assert runs == 2 + 2 * 2  # Pretrained, Raw trunk, 2 methods x 2 repeats
    assert set(results["embedding"]) == {"fold0", "fold1", "concatenated"}
    retrieval = {"precision_at_1", "r_precision", "map_at_r", "recall_at_1", "recall_at_2"}
    verification = {"roc_auc", "tar_at_far_1e-03", "far_at_threshold"}
    uncertainty = {"kappa_p1_spearman", "kappa_p1_pearson"}
    assert set(results["metric"]) == retrieval | verification | uncertainty
    by_metric = results.groupby("metric")
    concat_metrics = set(results[results["embedding"] == "concatenated"]["metric"])
    assert concat_metrics == retrieval | {"roc_auc"}  # no validation threshold for the concatenation
    assert results[results["metric"].isin(retrieval | verification)]["value"].between(0, 1).all()
    assert by_metric.get_group("kappa_p1_spearman")["value"].dropna().between(-1, 1).all()
    # the manifest says what the run holds (2 folds of 128), and the tables read it
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["folds"], manifest["repeats"]) == (2, 2)
    assert manifest["embeddings"] == {"fold0": 128, "fold1": 128, "concatenated": 256}
    assert manifest["metrics"]["far_at_threshold"]["better"] == "lower"
    assert set(results["metric"]) <= set(manifest["metrics"])
    md = (out / "tables" / "builtin.md").read_text(encoding="utf-8")
    assert "concatenated (256-dim)" in md and "(512-dim)" not in md
    assert "TAR@FAR=1e-3" in md and "tar_at_far_1e-03" not in md
    # P@1 and Recall@1 are the same number
    piv = results.pivot_table(index=["method", "repeat", "embedding"], columns="metric", values="value")
    assert (piv["precision_at_1"] == piv["recall_at_1"]).all()
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 4
    first = trials[trials["trial"] == 0]
    assert json.loads(first[first["method"] == "contrastive"]["params"].iloc[0]) == {"neg_margin": 1.0,
                                                                                      "pos_margin": 0.0}
    prov = json.loads((out / "provenance.json").read_text())
    inv = prov["invocations"][0]
    assert "torch" in inv["versions"] and "optuna" in inv["versions"] and "git" in inv
    assert "| Contrastive" in (out / "tables" / "builtin.md").read_text()


def test_rerun_is_a_no_op(reference_run):
    before = trial_counts(reference_run)
    results_before = pd.read_csv(reference_run / "results.csv")
    assert run(reference_run) == 0
    assert trial_counts(reference_run) == before
    pd.testing.assert_frame_equal(pd.read_csv(reference_run / "results.csv"), results_before)


@pytest.mark.parametrize("interrupt_at, complete_before", [(2, 1), (6, 4)])
def test_interrupted_run_resumes_to_identical_results(reference_run, tmp_path, monkeypatch, interrupt_at,
                                                      complete_before):
    """Ctrl-C in the 2nd search trial, or in the 2nd repeat (workers take every search unit first): the re-run
    redoes only that unit."""
    out = tmp_path / "run"
    original = workbench.Workbench.train_folds
    calls = {"n": 0}

    def interrupting(self, *args, **kwargs):
        calls["n"] += 1  # calls 1-2: contrastive's search trials; 3-4: the other method's; 5-6: contrastive's repeats
        if calls["n"] == interrupt_at:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(workbench.Workbench, "train_folds", interrupting)
    assert run(out) == 130
    partial = pd.read_csv(out / "trials.csv")
    assert (partial["state"] == "COMPLETE").sum() == complete_before
    assert (partial["state"] == "FAIL").sum() == (1 if interrupt_at == 2 else 0)  # trials.csv: search trials
    monkeypatch.setattr(workbench.Workbench, "train_folds", original)
    assert run(out) == 0
    got = pd.read_csv(out / "results.csv").sort_values(["method", "repeat", "embedding", "metric"])
    want = pd.read_csv(reference_run / "results.csv").sort_values(["method", "repeat", "embedding", "metric"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), want.reset_index(drop=True))
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 4  # nothing counted twice


def test_changed_config_is_refused(reference_run, capsys):
    assert run(reference_run, "--trials", "3") == 2
    err = capsys.readouterr().err.strip()
    assert "protocol.n_trials: 2 -> 3" in err and len(err.splitlines()) == 1
