"""The README cannot rot: its commands match CI, and its "Adding a method" example registers and runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.errors import RegistryError
from benchmark.methods import unregister_method

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_test_command_is_what_ci_runs():
    bash = code_blocks("bash")
    test_cmd = next(b.strip() for b in bash if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci
    run_cmd = next(b.strip() for b in bash if "--preset quick" in b and "pip install" in b)
    assert "dml-bench run --preset quick" in run_cmd
    assert (ROOT / "configs" / "quick.yaml").is_file()


def _example() -> str:
    (example,) = [b for b in code_blocks("python") if "register_method" in b]
    return example


def _copy_with_example(tmp_path: Path) -> Path:
    """A copy of the project with the README's example saved where the README says to save it."""
    copy = tmp_path / "project"
    for name in ("benchmark", "tests", "configs"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "run_benchmark.py", copy / "run_benchmark.py")
    target = re.search(r"Save this as `(benchmark/methods/library/\w+\.py)`", README).group(1)
    (copy / target).write_text(_example(), encoding="utf-8")
    return copy


@pytest.mark.slow
def test_adding_a_method_example_passes_the_method_suite_and_runs(tmp_path):
    """Saved as a file (not exec'd), the example is a library method like any other: every test that
    runs over the registered methods passes with it, and the smoke leaderboard ranks it."""
    copy = _copy_with_example(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    listed = subprocess.run([sys.executable, "run_benchmark.py", "list-methods"], cwd=copy, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert "binomial_deviance" in listed.stdout and "Binomial deviance" in listed.stdout
    suite = subprocess.run([sys.executable, "-m", "pytest", "-v", "-x", "-p", "no:cacheprovider", "tests/methods",
                            "-k", "binomial_deviance or test_registry"], cwd=copy, env=env,
                           capture_output=True, text=True, timeout=900)
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-2000:]
    ran = re.findall(r"^(tests/methods/\S+\[binomial_deviance[^\]]*\]) PASSED", suite.stdout, flags=re.M)
    assert any("test_entry_is_consistent" in t for t in ran), suite.stdout[-3000:]
    assert any("test_all_methods" in t for t in ran), suite.stdout[-3000:]
    out = tmp_path / "run"
    run = subprocess.run([sys.executable, "run_benchmark.py", "run", "--preset", "smoke", "--methods",
                          "binomial_deviance", "--out", str(out), "--no-progress"], cwd=copy, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = pd.read_csv(out / "results.csv")
    assert set(results["method"]) == {"pretrained", "binomial_deviance"}
    assert "Binomial deviance" in (out / "tables" / "builtin.md").read_text()


def test_example_without_its_docstring_is_refused_at_registration(tmp_path):
    """The registry, not a test, enforces the method contract: the same example without the build
    function's docstring fails when it is imported, naming what is missing."""
    example = _example()
    stripped = re.sub(r'(def binomial_deviance\(hp, ctx\):\n)    """.*?"""\n', r"\1", example, flags=re.S)
    assert stripped != example
    try:
        with pytest.raises(RegistryError, match="needs a docstring"):
            exec(compile(stripped, "README.md#adding-a-method", "exec"), {})
    finally:
        unregister_method("binomial_deviance")
