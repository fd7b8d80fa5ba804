"""The README and docs/ are read from a clone: every relative link must resolve inside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# [text](target) where target is not a URL, a mail address or a bare #anchor.
RELATIVE_LINK = re.compile(r"\[[^\]]*\]\((?!https?:|mailto:|#)([^)\s]+)\)")
DOCUMENTS = ("README.md", "docs/METRICS.md")


@pytest.mark.parametrize("document", DOCUMENTS)
def test_relative_links_resolve_inside_the_repository(document: str, repo_root: Path) -> None:
    path = repo_root / document
    broken = []
    for target in RELATIVE_LINK.findall(path.read_text()):
        resolved = (path.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(repo_root.resolve()) or not resolved.exists():
            broken.append(target)
    assert not broken, f"{document} links to what a clone does not have: {broken}"


def test_the_metric_contract_has_every_section(repo_root: Path) -> None:
    headings = re.findall(r"^## (\d)\. ", (repo_root / "docs/METRICS.md").read_text(), re.M)
    assert headings == [str(n) for n in range(1, 10)]
