"""The README and docs/ are read from a clone: every relative link must resolve inside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# [text](target) where target is not a URL, a mail address or a bare #anchor.
RELATIVE_LINK = re.compile(r"\[[^\]]*\]\((?!https?:|mailto:|#)([^)\s]+)\)")
# [text](target#anchor) and [text](#anchor): a link to a heading.
ANCHORED_LINK = re.compile(r"\[[^\]]*\]\((?!https?:|mailto:)([^)\s#]*)#([^)\s]+)\)")
DOCUMENTS = ("README.md", "docs/METRICS.md", "docs/ARCHITECTURE.md", "benchmarks/RESULTS.md")


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a document's headings (lower case, punctuation dropped)."""
    without_code = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6} (.+)$", without_code, re.M):
        anchor = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        numbered, n = anchor, 0
        while numbered in anchors:  # a repeated heading gets -1, -2, ...
            n += 1
            numbered = f"{anchor}-{n}"
        anchors.add(numbered)
    return anchors


@pytest.mark.parametrize("document", DOCUMENTS)
def test_relative_links_resolve_inside_the_repository(document: str, repo_root: Path) -> None:
    path = repo_root / document
    broken = []
    for target in RELATIVE_LINK.findall(path.read_text()):
        resolved = (path.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(repo_root.resolve()) or not resolved.exists():
            broken.append(target)
    assert not broken, f"{document} links to what a clone does not have: {broken}"


@pytest.mark.parametrize("document", DOCUMENTS)
def test_links_to_headings_find_them(document: str, repo_root: Path) -> None:
    path = repo_root / document
    broken = []
    for target, anchor in ANCHORED_LINK.findall(path.read_text()):
        linked = (path.parent / target).resolve() if target else path
        if linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text()):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{document} links to headings that are not there: {broken}"


def test_the_metric_contract_has_every_section(repo_root: Path) -> None:
    headings = re.findall(r"^## (\d)\. ", (repo_root / "docs/METRICS.md").read_text(), re.M)
    assert headings == [str(n) for n in range(1, 10)]
