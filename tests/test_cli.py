"""The command line: help, list-methods, and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.methods import list_methods


REPO = Path(__file__).resolve().parent.parent


def error_of(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_help_and_list_methods(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert main(["list-methods"]) == 0
    out = capsys.readouterr().out
    for spec in list_methods():
        assert spec.name in out and spec.display_name in out


def test_unknown_method(capsys, tmp_path):
    err = error_of(capsys, ["run", "--preset", "smoke", "--methods", "nope", "--out", str(tmp_path / "r")])
    assert "unknown method 'nope'" in err and "contrastive" in err
    assert not (tmp_path / "r").exists()


def test_unknown_preset(capsys):
    assert "unknown preset 'nope'" in error_of(capsys, ["run", "--preset", "nope"])


def test_unknown_config_key_is_rejected_not_ignored(capsys, tmp_path):
    err = error_of(capsys, ["run", "--preset", "smoke", "--set", "training.lr=1", "--out", str(tmp_path / "r")])
    assert "'training.lr'" in err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: x\nmethods: [contrastive]\nprotocl: {n_trials: 1}\n")
    assert "'protocl'" in error_of(capsys, ["run", "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert not (tmp_path / "r").exists()


def test_wrong_value_type(capsys, tmp_path):
    err = error_of(capsys, ["run", "--preset", "smoke", "--set", "protocol.n_trials=many", "--out", str(tmp_path)])
    assert "protocol.n_trials" in err and "int" in err


def test_missing_dataset_folder_fails_before_writing(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: x\nmethods: [contrastive]\ndatasets:\n  - name: cub200\n    root: {tmp_path / 'nowhere'}\n")
    err = error_of(capsys, ["run", "--config", str(cfg), "--out", str(tmp_path / "r")])
    assert "nowhere" in err
    assert not (tmp_path / "r").exists()


def test_corrupt_image_is_a_one_line_error(capsys, tmp_path):
    from tests.data.fixtures import make_image_folder, write_corrupt_image

    root = make_image_folder(tmp_path / "imgs", n_classes=8)
    victim = sorted(p for p in root.rglob("*.jpg"))[0]
    write_corrupt_image(victim)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: x\nmethods: [contrastive]\nmodel: {{trunk: small_cnn, pretrained: false}}\n"
                   f"datasets:\n  - name: folder\n    root: {root}\n    options: {{image_size: 32, resize: 36}}\n"
                   f"training: {{batch_size: 4, m_per_class: 2, iterations_per_epoch: 2, max_epochs: 1}}\n"
                   f"protocol: {{n_folds: 2, n_trials: 1, n_repeats: 1}}\n")
    err = error_of(capsys, ["run", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"])
    assert victim.name in err and "corrupt" in err


def test_too_few_classes_for_a_batch(capsys, tmp_path):
    err = error_of(capsys, ["run", "--preset", "smoke", "--set", "training.batch_size=128",
                            "--out", str(tmp_path / "r")])
    assert "needs 32" in err
    assert not (tmp_path / "r").exists()


def test_report_on_missing_folder(capsys, tmp_path):
    assert "results.csv" in error_of(capsys, ["report", str(tmp_path / "none")])


def test_report_compare_published_on_fixture_results(capsys, tmp_path):
    """A fixture run on cub200: the report puts the DCML paper's numbers and the difference beside ours."""
    import pandas as pd

    from benchmark.manifest import manifest_for, write_manifest

    rows = []
    for repeat in range(3):
        for emb in ("fold0", "fold1", "fold2", "fold3", "concatenated"):
            for metric, value in (("precision_at_1", 0.68), ("r_precision", 0.372), ("map_at_r", 0.265)):
                rows.append(dict(method="contrastive", display_name="Contrastive", dataset="cub200", repeat=repeat,
                                 embedding=emb, metric=metric, value=value + 0.001 * repeat))
    for emb in ("fold0", "fold1", "fold2", "fold3", "concatenated"):
        rows.append(dict(method="pretrained", display_name="Pretrained", dataset="cub200", repeat=0,
                         embedding=emb, metric="map_at_r", value=0.14))
    (tmp_path / "results.csv").write_text(pd.DataFrame(rows).to_csv(index=False))
    write_manifest(tmp_path, manifest_for(folds=4, repeats=3, embedding_dim=128, recall_at=[[1]], far=1e-3))
    assert main(["report", str(tmp_path), "--compare", "published", "--no-plots"]) == 0
    out = capsys.readouterr().out
    # Contrastive, concatenated MAP@R in the DCML paper's Table 1 (a block of published rows below ours), and
    # ours 26.60 (mean of 26.5, 26.6, 26.7) minus it
    assert "*Published*" in out and "26.53 (+0.07)" in out
    assert (tmp_path / "tables" / "cub200.tex").is_file()


def listed(out: str) -> set[str]:
    """The methods whose row (name in the first column) the text table holds."""
    return {line.split("|")[1].strip() for line in out.splitlines()[3:] if line.startswith("| ")} - {""}


def test_list_methods_shows_each_description_and_filters_by_name(capsys):
    from benchmark.methods.describe import summary

    assert main(["list-methods"]) == 0
    out = capsys.readouterr().out
    assert "description" in out.splitlines()[1]
    # the first paragraph of each build function's docstring, wrapped in its column
    assert "Pulls positives within ``pos_margin``" in out
    assert main(["list-methods", "proxy"]) == 0  # a substring of the name
    out = capsys.readouterr().out
    assert listed(out) == {"proxy_anchor", "proxy_nca", "proxy_nca_pp"}
    assert main(["list-methods", "--name", "dro_*"]) == 0  # a glob
    assert listed(capsys.readouterr().out) == {"dro_kl", "dro_topk", "dro_topk_pn"}
    assert main(["list-methods", "arcFACE"]) == 0  # the display name, any case
    assert listed(capsys.readouterr().out) == {"arcface"}
    for spec in list_methods():
        assert "\n" not in summary(spec) and summary(spec)


def test_list_methods_refuses_a_filter_that_matches_nothing(capsys):
    err = error_of(capsys, ["list-methods", "circle"])
    assert "no method matches 'circle'" in err and "contrastive" in err
    err = error_of(capsys, ["list-methods", "proxy", "--name", "dro"])
    assert "name filter once" in err


def test_list_methods_json_through_the_cli():
    repo = REPO
    proc = subprocess.run([sys.executable, str(repo / "run_benchmark.py"), "list-methods", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=repo)
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert [r["name"] for r in records] == [spec.name for spec in list_methods()]
    by_name = {r["name"]: r for r in records}
    arc = by_name["proxy_anchor"]
    assert arc["display_name"] == "Proxy-Anchor" and arc["source"] == "Kim et al., CVPR 2020"
    assert arc["search_space"]["loss_lr"] == {"type": "float", "low": 1e-6, "high": 1.0, "log": True}
    assert arc["defaults"]["margin"] == 0.1 and arc["has_parameters"] and arc["needs_num_classes"]
    assert arc["summary"].startswith("Each proxy is an anchor") and "\n" not in arc["summary"]
    soft = by_name["softtriple"]
    assert "centers_per_class" in soft["fixed"] and "centers_per_class" not in soft["search_space"]
    for spec in list_methods():
        record = by_name[spec.name]
        assert set(record["search_space"]) == set(spec.search_space)
        assert record["defaults"] == dict(spec.defaults)
        assert record["description"].split()[:3] == spec.description.split()[:3]
    proc = subprocess.run([sys.executable, str(repo / "run_benchmark.py"), "list-methods", "triplet", "--json"],
                          capture_output=True, text=True, timeout=300, cwd=repo)
    # the pattern is a substring of names and display names
    assert [r["name"] for r in json.loads(proc.stdout)] == [s.name for s in list_methods()
                                                            if "triplet" in f"{s.name} {s.display_name}".lower()]
    assert "triplet" in [r["name"] for r in json.loads(proc.stdout)]


#: One method, one search trial, one repeat of a few iterations, an untrained trunk: a whole run in seconds.
TINY_RUN = ["run", "--preset", "smoke", "--methods", "contrastive", "--trials", "1", "--repeats", "1",
            "--set", "model.pretrained=false", "--set", "evaluation.verification_far=null",
            "--set", "training.iterations_per_epoch=4", "--no-progress"]


def wait_for_line(path: Path, text: str, proc: subprocess.Popen, limit: float = 300) -> None:
    """Poll ``path`` until a line holds ``text`` (the process must still be running meanwhile)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if path.is_file() and any(text in line for line in path.read_text(encoding="utf-8").splitlines()):
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def search_states(out: Path) -> list[str]:
    from benchmark.protocol import storage as st

    study = st.get_study(st.create_storage(None, out), "builtin::contrastive::search")
    return [t.state.name for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)]


@pytest.mark.slow
def test_sigterm_is_handled_like_ctrl_c_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, str(REPO / "run_benchmark.py"), *TINY_RUN, "--out", str(out)]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the search trial's parameters are recorded once it runs (its slot and claim come just before)
        wait_for_line(out / "optuna.journal", '"param_name":"pos_margin"', proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == ("stopped (SIGTERM): the unit in progress was released to the other "
                                            "workers and resumes from its checkpoint; re-run the same command to go on")
    assert search_states(out) == ["FAIL"]
    assert not (out / "results.csv").is_file() or "contrastive" not in (out / "results.csv").read_text()
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert search_states(out) == ["FAIL", "COMPLETE"]  # the interrupted slot redone, once
    assert "summary: 1 failed or interrupted unit attempts were redone" in again.stderr
    results = (out / "results.csv").read_text()
    assert "contrastive" in results and "pretrained" in results.lower()


def write_features(path: Path, *, classes: int = 40, per_class: int = 8, dim: int = 16) -> None:
    """A small features file: separable class clusters (train: the first half of the classes)."""
    import numpy as np

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, dim)) * 2
    x = np.concatenate([centres[c] + rng.normal(size=(per_class, dim)) for c in range(classes)])
    np.savez(path, features=x.astype("float32"), labels=np.repeat(np.arange(classes), per_class))


@pytest.mark.slow
def test_the_features_preset_runs_a_features_file_end_to_end(tmp_path):
    write_features(tmp_path / "mine.npz")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(REPO / "run_benchmark.py"), "run", "--preset", "features",
                           "--set", f"datasets[0].root={tmp_path / 'mine.npz'}",
                           "--methods", "contrastive,proxy_anchor",
                           "--trials", "2", "--repeats", "2", "--folds", "2", "--out", str(out), "--no-progress"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| Proxy-Anchor" in proc.stdout and "| Pretrained" in proc.stdout
    import pandas as pd

    results = pd.read_csv(out / "results.csv")
    assert set(results["dataset"]) == {"features"}
    assert set(results["method"]) == {"pretrained", "raw_trunk", "contrastive", "proxy_anchor"}
    assert "| Raw trunk (" in proc.stdout  # the features as given, next to Pretrained
    config = (out / "config.resolved.yaml").read_text()
    assert "regime: frozen" in config and "optimizer: adam" in config and "max_epochs: 8" in config


def test_prepare_checks_and_prepares_without_writing_a_run_folder(tmp_path):
    write_features(tmp_path / "mine.npz")
    before = sorted(p.name for p in tmp_path.iterdir())
    env = {**__import__("os").environ, "DML_BENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(REPO / "run_benchmark.py"), "prepare", "--preset", "smoke",
                           "--set", "model.pretrained=false", "--set", "training.regime=frozen",
                           "--datasets", "builtin,features", "--set", f"datasets[1].root={tmp_path / 'mine.npz'}",
                           "--set", "datasets[0].options.num_classes=16", "--set", "training.batch_size=8",
                           "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[0] == "dataset builtin: 96 training and 96 test samples checked, 2 folds, trunk outputs cached"
    assert lines[1] == "dataset features: 160 training and 160 test samples checked, 2 folds"
    assert lines[2] == "trunk small_cnn: untrained (model.pretrained: false)"
    assert lines[3].startswith("prepared in ") and "dml-bench run" in lines[3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, "cache"])  # only the cache was written
    assert list((tmp_path / "cache").rglob("*"))  # the frozen regime's trunk outputs


def test_prepare_refuses_bad_input_in_one_line(capsys):
    err = error_of(capsys, ["prepare", "--preset", "features"])
    assert "'datasets[0].root'" in err and "--set datasets[0].root=PATH" in err
    err = error_of(capsys, ["prepare", "--preset", "smoke", "--trials", "3"])
    assert "unrecognized arguments: --trials 3" in err


#: A process that appends to an Optuna journal, under the CLI's signal handlers (installed again after each signal).
JOURNAL_HAMMER = """
import sys
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from benchmark import cli

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(storage=JournalStorage(JournalFileBackend(sys.argv[1])), study_name="s")
trial = study.ask()
n = 0
for _ in range(int(sys.argv[2])):
    cli._handle_signals(cli._on_sigterm, cli._on_sigint)
    print("ready", flush=True)
    try:
        while True:
            n += 1
            trial.set_user_attr("n", n)
            sum(range(20_000))  # work between two writes, as training is
    except KeyboardInterrupt as exc:  # Terminated for SIGTERM
        assert (type(exc) is cli.Terminated) == (sys.argv[3] == "SIGTERM"), type(exc)
trial.set_user_attr("final", n)  # the journal's lock is free and its records whole
study.tell(trial, 1.0)
again = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(sys.argv[1])))
print("journal intact" if again.trials[0].user_attrs["final"] == n else "journal damaged", flush=True)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_never_breaks_a_journal_write(sig, tmp_path):
    """SIGTERM or Ctrl-C in the middle of Optuna's journal code (its file lock, a record being appended) waits until
    that code has returned; raised there, it left the lock half-released and the worker died with a traceback."""
    rounds = 10
    proc = subprocess.Popen([sys.executable, "-c", JOURNAL_HAMMER, str(tmp_path / "j.journal"), str(rounds),
                             sig.name],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(rounds):
            assert proc.stdout.readline().strip() == "ready", proc.communicate()[1][-3000:]
            time.sleep(0.05)  # well inside the loop of journal writes
            proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert out.strip() == "journal intact" and "Traceback" not in err


#: A "training loop" under the CLI's signal handlers: it polls for stop requests as ``train_fold`` does.
POLLING_LOOP = """
import sys
from benchmark import cli
from benchmark.training import interrupt

cli._handle_signals(cli._on_sigterm, cli._on_sigint)
print("ready", flush=True)
try:
    with interrupt.polling():
        while True:
            stop = interrupt.take()
            if stop is not None:
                if sys.argv[1] == "hang":  # a stop taken, then a checkpoint that never ends
                    print("taken", flush=True)
                    while True:
                        sum(range(1000))
                raise stop
            sum(range(20_000))
except KeyboardInterrupt as exc:
    print(f"raised {type(exc).__name__}", flush=True)
    sys.exit(getattr(exc, "exit_status", 130))
"""


@pytest.mark.parametrize("sig,status,name", [(signal.SIGTERM, 143, "Terminated"), (signal.SIGUSR1, 138, "Preempted"),
                                             (signal.SIGINT, 130, "KeyboardInterrupt")], ids=["TERM", "USR1", "INT"])
def test_a_signal_is_taken_by_the_training_loop_at_its_next_iteration(sig, status, name):
    proc = subprocess.Popen([sys.executable, "-c", POLLING_LOOP, "take"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert out.strip() == f"raised {name}" and proc.returncode == status, err


def test_a_second_ctrl_c_exits_at_once():
    proc = subprocess.Popen([sys.executable, "-c", POLLING_LOOP, "hang"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline().strip() == "taken"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and out == "", (out, err)
    assert err.strip().startswith("interrupted again: exiting at once")
