"""The README cannot rot: its commands match CI, and its "Adding a method" example registers and runs."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.methods import get_method, unregister_method

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


@pytest.mark.slow
def test_adding_a_method_example_runs(tmp_path):
    (example,) = [b for b in code_blocks("python") if "register_method" in b]
    namespace: dict = {}
    exec(compile(example, "README.md#adding-a-method", "exec"), namespace)
    try:
        spec = get_method("binomial_deviance")
        assert spec.display_name == "Binomial deviance"
        out = tmp_path / "run"
        assert main(["run", "--preset", "smoke", "--methods", "binomial_deviance", "--out", str(out),
                     "--no-progress"]) == 0
        results = pd.read_csv(out / "results.csv")
        assert set(results["method"]) == {"pretrained", "binomial_deviance"}
        assert "Binomial deviance" in (out / "tables" / "builtin.md").read_text()
    finally:
        unregister_method("binomial_deviance")
