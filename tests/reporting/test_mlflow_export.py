"""``dml-bench export RUN --mlflow URI`` against real local MLflow stores, read back with MLflow's own client."""

from __future__ import annotations

import sys

import pytest

from benchmark.cli import main
from tests.reporting.fixtures import REPEATS, write_run_folder

mlflow = pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient  # noqa: E402


def _runs(uri: str, experiment: str) -> dict[str, object]:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    return {r.data.tags["dml_bench.method"]: r for r in client.search_runs([exp.experiment_id])}


def _round_trip(tmp_path, uri, capsys, monkeypatch):
    run = write_run_folder(tmp_path / "myrun")
    with (run / "results.csv").open("a") as f:  # a per-category metric (a dataset with categories): '@' in its name
        f.write("contrastive,Contrastive,cub200,0,concatenated,map_at_r@coffee maker,0.25\n"
                "contrastive,Contrastive,cub200,1,concatenated,map_at_r@coffee maker,0.27\n")
    (run / "tables").mkdir()
    (run / "tables" / "cub200.md").write_text("| Method | MAP@R |\n")
    (run / "tables" / "cars196.md").write_text("another dataset's table\n")
    monkeypatch.chdir(tmp_path)
    assert main(["export", str(run), "--mlflow", uri]) == 0, capsys.readouterr().err
    assert "exported 4 runs to experiment 'myrun'" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=uri)
    runs = _runs(uri, "myrun")
    assert set(runs) == {"pretrained", *REPEATS}
    ntxent = runs["ntxent"]
    assert ntxent.data.params["display_name"] == "NT-Xent" and ntxent.data.params["dataset"] == "cub200"
    assert ntxent.data.params["repeats"] == "4" and ntxent.data.params["embedding_dim"] == "128"
    assert ntxent.data.params["hp.temperature"] == "50.0"  # the fixture's best trial (all tie: the first slot)
    assert runs["triplet"].data.params["hp.margin"] == "0.5"
    # every repeat's value, by step, as results.csv holds it (NT-Xent's last repeat is NaN: not logged)
    history = client.get_metric_history(runs["contrastive"].info.run_id, "concatenated/map_at_r")
    assert sorted((m.step, round(m.value, 9)) for m in history) == [(0, 0.30), (1, 0.31), (2, 0.32), (3, 0.31)]
    history = client.get_metric_history(ntxent.info.run_id, "concatenated/map_at_r")
    assert sorted(m.step for m in history) == [0, 1, 2]
    assert runs["contrastive"].data.metrics["mean/concatenated/map_at_r"] == pytest.approx(0.31)
    assert runs["contrastive"].data.metrics["mean/separated/map_at_r"] == pytest.approx(0.29)
    assert "ci95/concatenated/map_at_r" in runs["contrastive"].data.metrics
    history = client.get_metric_history(runs["contrastive"].info.run_id, "concatenated/map_at_r.coffee maker")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.25), (1, 0.27)]
    assert runs["contrastive"].data.metrics["mean/concatenated/map_at_r.coffee maker"] == pytest.approx(0.26)
    curve = client.get_metric_history(runs["contrastive"].info.run_id, "val_map_at_r/repeat2/fold0")
    assert sorted((m.step, round(m.value, 9)) for m in curve) == [(10, 0.11), (20, 0.12), (30, 0.13)]
    artifacts = {a.path for a in client.list_artifacts(runs["contrastive"].info.run_id)}
    assert {"results.csv", "trials.csv", "curves.csv", "tables", "run"} <= artifacts
    tables = {a.path for a in client.list_artifacts(runs["contrastive"].info.run_id, "tables")}
    assert tables == {"tables/cub200.md"}
    local = client.download_artifacts(runs["contrastive"].info.run_id, "results.csv", str(tmp_path))
    import pandas as pd
    assert set(pd.read_csv(local)["method"]) == {"contrastive"}
    # exported again: the earlier runs are replaced, not doubled
    assert main(["export", str(run), "--mlflow", uri]) == 0
    assert "4 runs of an earlier export of this folder replaced" in capsys.readouterr().out
    assert len(client.search_runs([client.get_experiment_by_name("myrun").experiment_id])) == 4
    return run


def test_round_trip_file_store(tmp_path, capsys, monkeypatch):
    _round_trip(tmp_path, f"file:{tmp_path / 'mlruns'}", capsys, monkeypatch)


@pytest.mark.slow
def test_round_trip_sqlite_store(tmp_path, capsys, monkeypatch):
    _round_trip(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", capsys, monkeypatch)
    assert (tmp_path / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()  # beside the database


def _listing(folder):
    return sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.mark.parametrize("args, expect", [
    (lambda tmp: [str(tmp / "nowhere"), "--mlflow", f"file:{tmp / 'store'}"], "run folder not found"),
    (lambda tmp: [str(tmp / "run"), "--mlflow", "ftp://host/x"], "expected a tracking URI starting with file:"),
    (lambda tmp: [str(tmp / "empty"), "--mlflow", f"file:{tmp / 'store'}"], "results.csv does not exist"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, expect):
    write_run_folder(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    before = _listing(tmp_path)
    assert main(["export", *args(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expect in err
    assert _listing(tmp_path) == before


def test_missing_mlflow_names_the_pip_command(tmp_path, capsys, monkeypatch):
    write_run_folder(tmp_path / "run")
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    before = _listing(tmp_path)
    assert main(["export", str(tmp_path / "run"), "--mlflow", f"file:{tmp_path / 'store'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: export --mlflow needs the mlflow package, which is not installed: "
                   "pip install 'dml-bench[mlflow]' (or pip install mlflow-skinny)")
    assert _listing(tmp_path) == before
