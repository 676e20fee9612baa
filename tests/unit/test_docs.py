"""The README and docs/ stay in step with each other and with the code that cites them.

Links between pages resolve to a file and a heading (GitHub's anchors), the README stays a
five-minute read, and code comments cite pages inside the repository, never the README's old
sections or a design file outside it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_BYTES = 8192
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SUFFIXES = {".py", ".lua", ".sql", ".yml", ".yaml"}


def prose(text: str) -> list[str]:
    """The lines of a Markdown page outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to hyphens."""
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose(page.read_text()):
        heading = re.match(r"#{1,6} (.+)$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-")
            n = counts[slug] = counts.get(slug, -1) + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_between_pages_resolves_to_a_file_and_a_heading(page: Path) -> None:
    broken = []
    for line in prose(page.read_text()):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{target}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{target}: no such heading in {file.relative_to(ROOT)}")
    assert broken == [], f"{page.relative_to(ROOT)}: {broken}"


def test_the_readme_is_a_five_minute_read() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes: move detail to docs/ (issue 17)"


def test_the_readme_links_every_page_in_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert [p.name for p in PAGES[1:] if f"docs/{p.name}" not in readme] == []


def code_files() -> list[Path]:
    """Source and config files of the repository: hidden folders (.venv, .git, stack folders) left out."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in {"__pycache__", "node_modules"}]
        found += [Path(folder, f) for f in files if Path(f).suffix in CODE_SUFFIXES]
    return found


def test_code_cites_pages_that_exist_and_no_design_file_outside_the_repository() -> None:
    stale = []
    for file in code_files():
        if file == Path(__file__).resolve():
            continue
        text = file.read_text(errors="replace")
        cited = re.findall(r"\bdocs/[\w-]+\.md", text)
        stale += [f"{file.relative_to(ROOT)}: {page}" for page in cited if not (ROOT / page).exists()]
        stale += [f"{file.relative_to(ROOT)}: DESIGN" for _ in re.findall(r"\bDESIGN\b", text)]
        # The README keeps no sections to cite: "README, Gate" and the like point into docs/ now.
        stale += [f"{file.relative_to(ROOT)}: README" for _ in re.findall(r"\bREADME\b(?!\.md)", text)]
    assert stale == [], stale
