"""The words around the code stay true to it: every file, section and test that the code
and the docs cite exists, and the README stays a page for users."""

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ROOTS = ("apo_core", "tasks", "flows", "docs", "benchmarks", "configs", "infra", "tests")
PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./-]*\w)(?![\w*<{(])" % "|".join(ROOTS))
SECTION = re.compile(r"((?:docs/[\w-]+|benchmarks/README)\.md) §(\d+)")
TEST_ID = re.compile(r"(tests/\w+\.py)::(\w+)")
GENERATED = ("benchmarks/results",)  # written by the benchmarks, never committed


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    keep = (".py", ".md", ".yaml", ".yml", ".sh", ".toml")
    this_file = Path(__file__).name  # its patterns are not citations
    return [REPO / name for name in names if (name.endswith(keep) or name == "Makefile") and not name.endswith(this_file)]


def citations(pattern: re.Pattern) -> list[tuple[str, tuple[str, ...]]]:
    found = []
    for path in tracked_text_files():
        for match in pattern.finditer(path.read_text()):
            found.append((str(path.relative_to(REPO)), match.groups()))
    return found


def test_every_cited_file_exists():
    missing = sorted({(where, cited) for where, (cited,) in citations(PATH)
                      if not cited.startswith(GENERATED) and not (REPO / cited).exists()})
    assert missing == [], f"cited but not in the repository: {missing}"


def _sections(doc: Path) -> set[str]:
    headings = re.findall(r"^#+ (?:§(\d+)|(\d+)\.)\s", doc.read_text(), flags=re.MULTILINE)
    return {a or b for a, b in headings}


def test_every_cited_section_exists():
    missing = sorted({(where, f"{doc} §{number}") for where, (doc, number) in citations(SECTION)
                      if not (REPO / doc).exists() or number not in _sections(REPO / doc)})
    assert missing == [], f"cited sections that do not exist: {missing}"


def test_every_cited_test_exists():
    missing = sorted({(where, f"{file}::{name}") for where, (file, name) in citations(TEST_ID)
                      if not re.search(rf"^def {name}\(", (REPO / file).read_text(), flags=re.MULTILINE)})
    assert missing == [], f"cited tests that do not exist: {missing}"


@pytest.mark.parametrize("doc", ["README.md", "docs/apo.md", "docs/deployment.md", "docs/fault-model.md",
                                 "docs/configuration.md", "docs/world.md", "docs/policies.md", "docs/data.md",
                                 "docs/architecture.md", "benchmarks/README.md"])
def test_markdown_links_resolve(doc):
    text = (REPO / doc).read_text()
    targets = [t for t in re.findall(r"\]\(([^)#\s]+)\)", text) if "://" not in t]
    missing = [t for t in targets if not ((REPO / doc).parent / t).exists()]
    assert missing == []


def test_the_readme_is_a_page_for_users():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    assert "make demo" in readme and "make test" in readme
