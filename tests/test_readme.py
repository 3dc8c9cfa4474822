"""The README cannot rot: its commands match CI, every link in it leads to a file of the repository, and it
stays short (the documentation in docs/ says the rest; its example method is tested in tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_links_lead_to_files_of_the_repository():
    links = [target.split("#")[0] for target in re.findall(r"\]\(([^)]+)\)", README)
             if not target.startswith(("http://", "https://", "#"))]
    assert any(link.startswith("docs/") for link in links)
    assert [link for link in links if not (ROOT / link).exists()] == []


def _slug(heading: str) -> str:
    return re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", heading.strip().lower()))


def test_anchors_lead_to_headings():
    headings = {_slug(h) for h in re.findall(r"^#+ (.+)$", README, flags=re.M)}
    anchors = re.findall(r"\]\(#([^)]+)\)", README)
    assert [a for a in anchors if a not in headings] == []


def test_run_folder_table_matches_the_reference_page():
    """The README's table of what a run writes lists the same files as docs/reference/run-folder.md."""
    def files(text: str) -> list[str]:
        return re.findall(r"^\| (`[^|]+) \|", text, flags=re.M)

    page = (ROOT / "docs" / "reference" / "run-folder.md").read_text(encoding="utf-8")
    assert files(README) and files(README) == files(page)


def test_readme_is_short():
    assert len(README.splitlines()) <= 150
