"""``dml-bench submit slurm``: the generated script (every option lands, the password never does), the refusals
(one line, exit 2, nothing written), and, on a real single-node SLURM (``.ci/slurm.sh``) with the real PostgreSQL,
a 3-task array that finishes the smoke leaderboard with every unit exactly once, and a task signalled mid-unit
whose unit the other tasks finish."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import stat
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from benchmark import cli
from benchmark.protocol import slurm
from benchmark.protocol import storage as st
from benchmark.protocol.slurm import SlurmError, parse_time
from tests.protocol.workers import ROOT, assert_every_unit_exactly_once, fresh_postgres_database

SLURM_ENV = "DML_BENCH_TEST_SLURM"
URL = "postgresql://dml:s3cret-pw@dbhost:5432/dmlbench"


def submit(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["submit", "slurm", *args])
    out, err = capsys.readouterr()
    return code, out, err


def dry_run(capsys, tmp_path, *args: str, storage: str = URL) -> str:
    code, out, err = submit(capsys, "--preset", "smoke", "--out", str(tmp_path / "run"), "--storage", storage,
                            "--tasks", "3", "--time", "4:00:00", "--dry-run", *args)
    assert code == 0, err
    assert not (tmp_path / "run").exists(), "a dry run wrote the run folder"
    return out


def directives(script: str) -> list[str]:
    return re.findall(r"^#SBATCH (.+)$", script, flags=re.M)


def worker_argv(script: str) -> list[str]:
    """The worker's command line, as bash would split the script's ``exec`` line."""
    command = script[script.index("\nexec ") + len("\nexec "):].replace("\\\n", " ")
    return shlex.split(command)


@pytest.fixture(autouse=True)
def private_config_home(tmp_path, monkeypatch):
    """Where ``submit`` keeps a storage URL with a password (never the user's own folder in a test)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-home"))


# --- the script ------------------------------------------------------------------------------------------

def test_every_option_lands_in_the_script(capsys, tmp_path, monkeypatch):
    config = tmp_path / "my.yaml"
    config.write_text((ROOT / "configs" / "smoke.yaml").read_text())
    monkeypatch.chdir(tmp_path)  # a relative config and run folder: the script names them absolute
    code, out, err = submit(capsys, "--config", "my.yaml", "--out", "run", "--storage", "postgresql://dml@dbhost/dmlbench",
                            "--tasks", "32", "--gpus-per-task", "2", "--cpus-per-task", "6", "--time", "1-12:00:00",
                            "--partition", "gpu-long", "--extra", "--account=lab --qos high", "--extra", "-C v100",
                            "--signal-before", "300", "--set", "training.max_epochs=3", "--set", "seed=7",
                            "--methods", "contrastive", "--trials", "5", "--repeats", "4", "--folds", "3",
                            "--device", "cuda", "--allow-config-change", "--workers", "2", "--dry-run")
    assert code == 0, err
    assert out.startswith(f"# {tmp_path / 'run' / 'slurm' / 'submit-<jobid>.sbatch'} (dry run")
    script = out[out.index("#!/bin/bash"):]
    run = tmp_path / "run"
    assert directives(script) == [
        "--job-name=dml-bench-run", "--array=0-31", "--ntasks=1", "--cpus-per-task=6", "--gres=gpu:2",
        "--time=1-12:00:00", "--partition=gpu-long", "--signal=B:USR1@300", f"--output={run}/slurm/%A_%a.log",
        "--open-mode=append", "--account=lab", "--qos=high", "-C v100"]
    assert "export OMP_NUM_THREADS=6 MKL_NUM_THREADS=6" in script
    assert f"\ncd {tmp_path}\n" in script  # where submit ran: the worker sees the same relative paths
    argv = worker_argv(script)
    assert argv[:3] == [sys.executable, "-c", "from benchmark.cli import entry_point; entry_point()"]
    assert argv[3:] == ["run", "--config", str(config), "--set", "training.max_epochs=3", "--set", "seed=7",
                        "--methods", "contrastive", "--folds", "3", "--device", "cuda", "--trials", "5",
                        "--repeats", "4", "--allow-config-change", "--out", str(run), "--storage",
                        "postgresql://dml@dbhost/dmlbench", "--workers", "2", "--no-progress"]
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0  # bash reads it


def test_every_run_option_reaches_the_worker():
    """Each ``run`` flag given to ``submit`` is repeated on the worker's command line (a new flag of ``run`` is
    forwarded without anyone remembering to), except those the script sets itself."""
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    run_actions = commands["run"]._actions
    submit_dests = {a.dest for a in commands["submit"]._actions}
    args = argparse.Namespace()
    expected = []
    for action in run_actions:
        if not action.option_strings or action.dest == "help":
            continue
        assert action.dest in submit_dests, f"submit does not take run's {action.option_strings}"
        if action.dest in slurm._NOT_FORWARDED:
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:
            setattr(args, action.dest, True)
            expected.append([flag])
        elif isinstance(action, argparse._AppendAction):
            setattr(args, action.dest, ["a=1", "b=2"])
            expected.append([flag, "a=1", flag, "b=2"])
        else:
            value = "/abs/x.yaml" if action.dest == "config" else "7"
            setattr(args, action.dest, value)
            expected.append([flag, value])
    got = slurm.worker_arguments(run_actions, args)
    assert got == [part for pair in expected for part in pair]


def test_the_password_stays_out_of_the_script(capsys, tmp_path):
    out = dry_run(capsys, tmp_path)
    assert "s3cret-pw" not in out
    argv = worker_argv(out[out.index("#!/bin/bash"):])
    secret = Path(argv[argv.index("--storage-file") + 1])
    assert secret == slurm.secret_file(URL)
    # named after the URL without its password: the name tells nothing about it (no offline guessing)
    assert secret == slurm.secret_file(URL.replace("s3cret-pw", "another"))
    assert secret.is_relative_to(tmp_path / "config-home") and not secret.is_relative_to(tmp_path / "run")
    assert not secret.exists()  # a dry run writes nothing


def test_a_url_without_password_is_written_as_it_is(capsys, tmp_path):
    out = dry_run(capsys, tmp_path, storage="postgresql://dml@dbhost/dmlbench")
    argv = worker_argv(out[out.index("#!/bin/bash"):])
    assert argv[argv.index("--storage") + 1] == "postgresql://dml@dbhost/dmlbench"
    assert "--storage-file" not in argv


def test_a_storage_file_of_the_user_is_read_where_it_is(capsys, tmp_path):
    secret = tmp_path / "db-url"
    secret.write_text(URL + "\n")
    secret.chmod(0o600)
    code, out, err = submit(capsys, "--preset", "smoke", "--out", str(tmp_path / "run"), "--storage-file",
                            str(secret), "--tasks", "2", "--time", "10", "--dry-run")
    assert code == 0, err
    argv = worker_argv(out[out.index("#!/bin/bash"):])
    assert argv[argv.index("--storage-file") + 1] == str(secret) and "s3cret-pw" not in out
    assert not (tmp_path / "config-home").exists()


def test_the_signal_lead_is_at_most_half_the_time_limit(capsys, tmp_path):
    assert "--signal=B:USR1@120" in directives(dry_run(capsys, tmp_path))
    assert "--signal=B:USR1@60" in directives(dry_run(capsys, tmp_path, "--time", "2"))


@pytest.mark.parametrize("text, seconds", [
    ("4:00:00", 14400), ("100:00:00", 360000), ("90", 5400), ("10:30", 630), ("1-0", 86400), ("2-3:04", 183840),
    ("1-2:03:04", 93784)])
def test_parse_time(text, seconds):
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["", "4h", "1:60:00", "1:00:60", "1-24", "0", "0:00:00", "4:00:00:00", "-1",
                                  "UNLIMITED"])
def test_parse_time_refuses(text):
    with pytest.raises(SlurmError, match="--time"):
        parse_time(text)


# --- refusals: one line, exit 2, nothing written ----------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    ([], "submit slurm needs --storage"),
    (["--storage", "sqlite:///runs.db"], "is a sqlite database"),
    (["--storage", URL, "--time", "4h"], "--time '4h' is not a time limit"),
    (["--storage", URL, "--tasks", "0"], "--tasks 0: expected at least 1"),
    (["--storage", URL, "--cpus-per-task", "0"], "--cpus-per-task 0"),
    (["--storage", URL, "--gpus-per-task", "-1"], "--gpus-per-task -1"),
    (["--storage", URL, "--partition", "a b"], "is not a partition name"),
    (["--storage", URL, "--extra=--array=0-9"], "--array is written by the launcher; set it with --tasks"),
    (["--storage", URL, "--extra", "--time 5"], "--time is written by the launcher; set it with --time"),
    (["--storage", URL, "--extra", "account=lab"], "'account=lab' is not an sbatch option"),
    (["--storage", URL, "--extra=--comment 'a"], "cannot be split"),
    (["--storage", URL, "--signal-before", "600", "--time", "10"], "--signal-before 600 must be"),
    (["--storage", URL, "--device", "cuda"], "the tasks ask for no GPU"),
    (["--storage", URL, "--device", "cpu", "--gpus-per-task", "1"], "the GPUs would sit idle"),
    (["--storage", URL, "--time", ""], "--time is empty"),
])
def test_refusals(capsys, tmp_path, args, message):
    base = ["--preset", "smoke", "--out", str(tmp_path / "run"), "--tasks", "2", "--time", "1:00:00"]
    code, out, err = submit(capsys, *base, *args)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert message in err, err
    assert "s3cret-pw" not in err
    assert not (tmp_path / "run").exists() and not (tmp_path / "config-home").exists()


def test_a_run_folder_with_a_space_is_refused(capsys, tmp_path):
    code, _, err = submit(capsys, "--preset", "smoke", "--out", str(tmp_path / "my run"), "--storage", URL,
                          "--tasks", "2", "--time", "10", "--dry-run")
    assert code == 2 and "holds a space" in err
    assert not (tmp_path / "my run").exists()


def test_no_sbatch_is_refused_before_anything_is_written(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    code, _, err = submit(capsys, "--preset", "smoke", "--out", str(tmp_path / "run"), "--storage", URL,
                          "--tasks", "2", "--time", "10")
    assert code == 2 and err.startswith("error: sbatch is not on this machine's PATH"), err
    assert not (tmp_path / "run").exists() and not (tmp_path / "config-home").exists()


# --- a real SLURM ------------------------------------------------------------------------------------------

def require_slurm() -> None:
    if not os.environ.get(SLURM_ENV):
        if os.environ.get("CI"):
            pytest.fail(f"{SLURM_ENV} is not set in CI: .ci/run must start SLURM (.ci/slurm.sh) and set it")
        pytest.skip(f"no SLURM cluster ({SLURM_ENV} unset; bash .ci/slurm.sh starts one on this machine as root)")


def submit_process(out: Path, url: str, *extra: str, tasks: int = 3) -> tuple[str, subprocess.CompletedProcess]:
    """``dml-bench submit slurm`` as a user runs it; the job id it printed."""
    command = [sys.executable, str(ROOT / "run_benchmark.py"), "submit", "slurm", "--preset", "smoke", "--out",
               str(out), "--storage", url, "--tasks", str(tasks), "--time", "20:00", "--no-progress",
               "--set", "protocol.poll_interval=0.3", *extra]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    match = re.match(r"submitted job (\d+):", proc.stdout)
    return (match.group(1) if match else ""), proc


def job_tasks(job_id: str) -> dict[int, dict[str, str]]:
    """Each array task's record (``scontrol show job``: kept MinJobAge seconds after it ends)."""
    text = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
    tasks = {}
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("ArrayTaskId", "").isdigit():
            tasks[int(fields["ArrayTaskId"])] = fields
    return tasks


def wait_for_job(job_id: str, run_dir: Path, timeout: float = 1200) -> None:
    """Until no task of the job is queued or running; on the timeout, cancel it and fail with the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        queued = subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip()
        if not queued:
            return
        time.sleep(1)
    subprocess.run(["scancel", job_id])
    pytest.fail(f"job {job_id} still running after {timeout} s: {logs(run_dir, job_id)}")


def logs(run_dir: Path, job_id: str) -> str:
    paths = sorted((run_dir / "slurm").glob(f"{job_id}_*.log"))
    return "\n".join(f"== {p.name}\n{p.read_text()[-3000:]}" for p in paths)


def task_pids(run_dir: Path, job_id: str) -> dict[int, int]:
    """pid of each started task's worker, from the line the script prints before it ``exec``s the worker."""
    pids = {}
    for path in (run_dir / "slurm").glob(f"{job_id}_*.log"):
        match = re.search(r"array task (\d+) of job \d+ on \S+, pid (\d+)", path.read_text())
        if match:
            pids[int(match.group(1))] = int(match.group(2))
    return pids


def test_a_partition_sbatch_refuses_is_refused_before_anything_is_written(tmp_path):
    require_slurm()
    with fresh_postgres_database() as url:
        job_id, proc = submit_process(tmp_path / "run", url, "--partition", "no-such-partition")
    assert proc.returncode == 2 and not job_id, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: sbatch refused the job: ") and "partition" in proc.stderr.lower()
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists() and not (tmp_path / "config-home").exists()


@pytest.mark.slow
def test_three_tasks_finish_the_smoke_leaderboard_with_every_unit_once(tmp_path):
    require_slurm()
    out = tmp_path / "run"
    with fresh_postgres_database() as url:
        job_id, proc = submit_process(out, url, "--trials", "3")
        assert proc.returncode == 0 and job_id, proc.stderr
        wait_for_job(job_id, out)
        tasks = job_tasks(job_id)
        assert sorted(tasks) == [0, 1, 2], tasks
        assert {i: (t["JobState"], t["ExitCode"]) for i, t in tasks.items()} == \
            {i: ("COMPLETED", "0:0") for i in range(3)}, logs(out, job_id)
        assert_every_unit_exactly_once(st.create_storage(url, out), n_trials=3, n_repeats=2)
        # which tasks did work depends on the scheduler; every one of them started its worker
        assert sorted(task_pids(out, job_id)) == [0, 1, 2]
    script = out / "slurm" / f"submit-{job_id}.sbatch"
    assert script.is_file() and "#SBATCH --array=0-2" in script.read_text()
    assert [p.name for p in (out / "slurm").iterdir() if p.name.startswith(".")] == []
    # Pretrained, Raw trunk, 2 methods x 2 repeats
    assert len(pd.read_csv(out / "results.csv").groupby(["method", "repeat"])) == 2 + 2 * 2
    assert (out / "tables" / "builtin.md").is_file()  # the worker that finished the leaderboard wrote the tables
    password = re.search(r"://[^:]+:([^@]+)@", url).group(1)
    holders = [p for p in out.rglob("*") if p.is_file() and f":{password}@".encode() in p.read_bytes()]
    assert holders == []  # the password is in no file of the run folder, the script included
    secret = slurm.secret_file(url)
    assert secret.read_text().strip() == url and stat.S_IMODE(secret.stat().st_mode) == 0o600


def running_unit(storage, pids: dict[int, int]) -> tuple[int, int, str, int] | None:
    """(task, pid, study, trial number) of a search unit that a task's worker runs and has finished one fold of
    (so that it is in the middle of its unit); None while there is none."""
    by_pid = {pid: task for task, pid in pids.items()}
    for summary in optuna.get_all_study_summaries(storage):
        if not summary.study_name.endswith("::search"):
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            pid = int(str(t.user_attrs.get(st.WORKER_ATTR, ":0")).rsplit(":", 1)[1])
            if pid in by_pid and t.user_attrs.get("fold_values"):  # written at the end of each fold
                return by_pid[pid], pid, summary.study_name, t.number
    return None


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["USR1", "TERM"])
def test_a_task_signalled_mid_unit_leaves_its_unit_to_the_others(tmp_path, signal_name):
    """``scancel --batch --signal`` to one task while its worker is in the middle of a search unit (one fold of
    three done): that task ends, the other two finish the leaderboard, and every unit is recorded once."""
    require_slurm()
    out = tmp_path / "run"
    with fresh_postgres_database() as url:
        # three longer folds: the unit is still running when the signal arrives
        job_id, proc = submit_process(out, url, "--methods", "contrastive", "--trials", "2", "--folds", "3",
                                      "--set", "training.iterations_per_epoch=40")
        assert proc.returncode == 0 and job_id, proc.stderr
        storage = st.create_storage(url, out)
        victim = None
        deadline = time.monotonic() + 900
        while victim is None and time.monotonic() < deadline:
            victim = running_unit(storage, task_pids(out, job_id))
            if victim is None:
                if not subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip():
                    pytest.fail(f"the job ended before any unit was seen running: {logs(out, job_id)}")
                time.sleep(0.2)
        assert victim is not None, logs(out, job_id)
        task, pid, study_name, number = victim
        subprocess.run(["scancel", "--batch", f"--signal={signal_name}", f"{job_id}_{task}"], check=True)
        wait_for_job(job_id, out)
        tasks = job_tasks(job_id)
        assert tasks[task]["JobState"] != "COMPLETED", (tasks[task], logs(out, job_id))  # the worker was stopped
        others = {i: (t["JobState"], t["ExitCode"]) for i, t in tasks.items() if i != task}
        assert others == {i: ("COMPLETED", "0:0") for i in range(3) if i != task}, logs(out, job_id)
        interrupted = optuna.load_study(study_name=study_name, storage=storage).trials[number]
        assert interrupted.state == TrialState.FAIL, (interrupted.state, logs(out, job_id))  # stopped mid-unit
        assert_every_unit_exactly_once(storage, n_trials=2, n_repeats=2, killed_pids={pid})
        # the unit's second attempt took the fold the stopped worker had finished from its checkpoint
        assert "fold 0: finished in an earlier attempt, taken from its checkpoint" in (out / "run.log").read_text(), \
            logs(out, job_id)
    # Pretrained, Raw trunk, 2 repeats
    assert len(pd.read_csv(out / "results.csv").groupby(["method", "repeat"])) == 2 + 2
