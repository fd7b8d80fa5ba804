"""What may import what: the import-linter contracts of pyproject.toml hold.

The layers and the rules between packages are described in docs/ARCHITECTURE.md; a
broken contract prints the chain of imports that breaks it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_import_contracts_are_kept(repo_root: Path) -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
