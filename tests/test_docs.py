"""The documentation cannot rot.

* The site builds with ``mkdocs build --strict``: a broken link or anchor, a missing page or a page left out of
  the navigation fails.
* The reference pages are what ``docs/gen_reference.py`` writes from the code, and they name every config key,
  CLI option and registered method.
* Every shell command of the newcomer's tutorial runs, in order, in a copy of the project; its example method
  passes the method tests and the registry refuses it without its docstring.
* The repository cites no file it does not contain: no absolute path to a machine's files, no
  ``shared/PROTOCOL.md`` or ``METHODS.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmark.errors import RegistryError
from benchmark.methods import list_methods, unregister_method

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TUTORIAL = DOCS / "tutorials" / "first-leaderboard.md"


def _gen():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the site -------------------------------------------------------------------------------------------------

def _mkdocs() -> list[str]:
    exe = Path(sys.executable).with_name("mkdocs")
    if exe.exists():
        return [str(exe)]
    if importlib.util.find_spec("mkdocs") is not None:
        return [sys.executable, "-m", "mkdocs"]
    if os.environ.get("CI"):
        pytest.fail("mkdocs is not installed: CI installs it with the test extra (setup.cfg)")
    pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")


QUIET = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


def test_site_builds_strict(tmp_path):
    run = subprocess.run([*_mkdocs(), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, env=QUIET)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").is_file()


def test_strict_build_fails_on_a_broken_link(tmp_path):
    """The strict build is not a formality: a page linking to a missing page fails it."""
    copy = tmp_path / "project"
    shutil.copytree(DOCS, copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    page = copy / "docs" / "index.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [nothing](no-such-page.md).\n", encoding="utf-8")
    run = subprocess.run([*_mkdocs(), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=copy,
                         capture_output=True, text=True, timeout=600, env=QUIET)
    assert run.returncode != 0 and "no-such-page.md" in run.stdout + run.stderr


# -- the generated reference ----------------------------------------------------------------------------------

def test_reference_pages_are_up_to_date():
    stale = [rel for rel, text in _gen().render_all().items()
             if not (DOCS / rel).is_file() or (DOCS / rel).read_text(encoding="utf-8") != text]
    assert not stale, f"run `python docs/gen_reference.py` and commit the pages: {stale}"


def test_reference_names_every_key_option_and_method():
    gen = _gen()
    pages = gen.render_all()
    config_page = pages["reference/configuration.md"]
    keys = [k for k, _, _ in gen.config_keys()]
    assert "training.patience" in keys and "datasets[].method_params" in keys and "seed" in keys
    missing = [k for k in keys if f"| `{k}` |" not in config_page]
    assert not missing
    for section in (gen.cfg.ModelConfig, gen.cfg.TrainingConfig, gen.cfg.ProtocolConfig, gen.cfg.FrozenConfig):
        for f in dataclasses.fields(section):
            assert f".{f.name}` |" in config_page, f.name

    cli_page = pages["reference/cli.md"]
    parser = gen.build_parser()
    commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0].choices
    for name, sub in commands.items():
        assert f"## `dml-bench {name}`" in cli_page
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                spelling = ", ".join(action.option_strings) or action.dest.upper()
                assert f"| `{spelling}` |" in cli_page, (name, spelling)
                assert action.help, f"dml-bench {name} {spelling}: give it a help= (the reference prints it)"

    methods_page = pages["reference/methods.md"]
    for spec in list_methods():
        assert f"## {spec.name}\n" in methods_page and spec.source in methods_page
        for param in spec.search_space:
            assert f"| `{param}` |" in methods_page


def test_checks_reference_lists_every_check_with_its_docstring():
    gen = _gen()
    checks = gen.check_functions()
    names = {f for _, f, _ in checks}
    assert {"check_output_dir", "check_storage_url", "check_run_config", "check_image_header"} <= names
    assert [f"{m}.{f}" for m, f, d in checks if not d] == [], "give every check a docstring"
    page = gen.checks_page()
    assert all(f"| `{m}` | `{f}` |" in page for m, f, _ in checks)


def test_config_reference_gives_a_keys_layer_names():
    page = _gen().configuration_page()
    row = next(line for line in page.splitlines() if line.startswith("| `training.optimizer` |"))
    from benchmark.training.optim import OPTIMIZERS

    assert all(f"`{name}`" in row for name in OPTIMIZERS)
    row = next(line for line in page.splitlines() if line.startswith("| `training.momentum` |"))
    assert "[0, 1)" in row and "`0.9`" in row


# -- the newcomer's tutorial ----------------------------------------------------------------------------------

def tutorial_blocks(text: str) -> list[tuple[str, str, bool]]:
    """``(language, code, run)`` of every fenced block; ``run`` is False under a ``<!-- not run: ... -->``."""
    out = []
    for m in re.finditer(r"(<!-- not run:[^>]*-->\n)?```(\w+)\n(.*?)```", text, flags=re.S):
        out.append((m.group(2), m.group(3), m.group(1) is None))
    return out


def _example() -> str:
    (example,) = [code for lang, code, _ in tutorial_blocks(TUTORIAL.read_text(encoding="utf-8"))
                  if lang == "python" and "register_method" in code]
    return example


def _copy_project(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    for name in ("benchmark", "tests", "configs"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "run_benchmark.py", copy / "run_benchmark.py")
    return copy


def test_tutorial_blocks_are_read_as_written():
    blocks = tutorial_blocks(TUTORIAL.read_text(encoding="utf-8"))
    shell = [(code, run) for lang, code, run in blocks if lang == "bash"]
    assert [run for _, run in shell].count(False) == 1  # only the quick preset (minutes) is not run
    assert any("--preset smoke" in code and run for code, run in shell)
    install = shell[0][0].strip()
    assert install in (ROOT / "README.md").read_text(encoding="utf-8")  # the README's first command


@pytest.mark.slow
def test_tutorial_commands_run(tmp_path):
    """Every shell block after the install, in order, in a copy of the project (``dml-bench`` run as
    ``python run_benchmark.py``, which is the same); the example is saved where the page says."""
    text = TUTORIAL.read_text(encoding="utf-8")
    copy = _copy_project(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    outputs = []
    blocks = tutorial_blocks(text)
    assert "pip install" in blocks[0][1]  # the install: the README's command, checked against CI there
    for lang, code, run in blocks[1:]:
        if lang == "python":
            target = re.search(r"Save this as `(benchmark/methods/library/\w+\.py)`", text).group(1)
            (copy / target).write_text(code, encoding="utf-8")
            continue
        if lang != "bash" or not run:
            continue
        for line in code.strip().splitlines():
            argv = shlex.split(line)
            assert argv[0] == "dml-bench", line
            done = subprocess.run([sys.executable, "run_benchmark.py", *argv[1:], *(
                ["--no-progress"] if argv[1] == "run" else [])], cwd=copy, env=env, capture_output=True,
                text=True, timeout=1200)
            assert done.returncode == 0, (line, done.stdout[-2000:], done.stderr[-3000:])
            outputs.append((line, done.stdout))
    smoke = pd.read_csv(copy / "results" / "smoke" / "results.csv")
    assert set(smoke["method"]) == {"pretrained", "raw_trunk", "contrastive", "multi_similarity"}
    listed = dict(outputs)["dml-bench list-methods"]
    assert "binomial_deviance" in listed and "Binomial deviance" in listed
    mine = pd.read_csv(copy / "results" / "my-method" / "results.csv")
    assert set(mine["method"]) == {"pretrained", "raw_trunk", "binomial_deviance"}
    assert "Binomial deviance" in (copy / "results" / "my-method" / "tables" / "builtin.md").read_text()


@pytest.mark.slow
def test_example_method_passes_the_method_suite(tmp_path):
    """Saved as a file (not exec'd), the example is a library method like any other: every test that runs
    over the registered methods passes with it."""
    copy = _copy_project(tmp_path)
    (copy / "benchmark" / "methods" / "library" / "binomial_deviance.py").write_text(_example(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    suite = subprocess.run([sys.executable, "-m", "pytest", "-v", "-x", "-p", "no:cacheprovider", "tests/methods",
                            "-k", "binomial_deviance or test_registry"], cwd=copy, env=env,
                           capture_output=True, text=True, timeout=900)
    assert suite.returncode == 0, suite.stdout[-3000:] + suite.stderr[-2000:]
    ran = re.findall(r"^(tests/methods/\S+\[binomial_deviance[^\]]*\]) PASSED", suite.stdout, flags=re.M)
    assert any("test_entry_is_consistent" in t for t in ran), suite.stdout[-3000:]
    assert any("test_all_methods" in t for t in ran), suite.stdout[-3000:]


def test_example_without_its_docstring_is_refused_at_registration():
    """The registry, not a test, enforces the method contract: the same example without the build function's
    docstring fails when it is imported, naming what is missing."""
    example = _example()
    stripped = re.sub(r'(def binomial_deviance\(hp, ctx\):\n)    """.*?"""\n', r"\1", example, flags=re.S)
    assert stripped != example
    try:
        with pytest.raises(RegistryError, match="needs a docstring"):
            exec(compile(stripped, "docs/tutorials/first-leaderboard.md", "exec"), {})
    finally:
        unregister_method("binomial_deviance")


# -- self-contained -------------------------------------------------------------------------------------------

#: Where a file may name the outside documents it replaces (this test itself).
OUTSIDE_OK = {"tests/test_docs.py"}
OUTSIDE = [re.compile(r"/work/"), re.compile(r"shared/PROTOCOL\.md"), re.compile(r"\bMETHODS\.md"),
           re.compile(r"/home/\w+"), re.compile(r"shared/seeds")]


def tracked_files() -> list[str]:
    done = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("not a git checkout")
    return [p for p in done.stdout.split("\0") if p]


def test_no_reference_outside_the_repository():
    found = []
    for rel in tracked_files():
        path = ROOT / rel
        if rel in OUTSIDE_OK or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            found += [f"{rel}:{n}: {line.strip()[:120]}" for pattern in OUTSIDE if pattern.search(line)]
    assert not found, "\n".join(found)


def test_docs_pages_cited_in_docstrings_exist():
    """A docstring's ``docs/...md`` points at a page the repository has."""
    cited = set()
    for path in (ROOT / "benchmark").rglob("*.py"):
        cited |= set(re.findall(r"docs/[\w/.-]+\.md", path.read_text(encoding="utf-8")))
    assert cited, "docstrings cite the docs pages that define the protocol and the methods"
    assert sorted(c for c in cited if not (ROOT / c).is_file()) == []
