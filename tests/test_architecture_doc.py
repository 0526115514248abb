"""docs/architecture.md and the READMEs name modules by file; every file they name exists, so a
rename that forgets the docs fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["docs/architecture.md", "README.md", "services/notify/README.md"]
SKIP = {"node_modules", ".venv", "cdk.out", "dist", ".git"}


def _python_files() -> list[str]:
    return [
        path.relative_to(ROOT).as_posix()
        for path in ROOT.rglob("*.py")
        if not SKIP.intersection(path.relative_to(ROOT).parts)
    ]


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_file_a_doc_names_exists(doc: str) -> None:
    files = _python_files()
    named = set(re.findall(r"`([\w./-]+\.py)`", (ROOT / doc).read_text(encoding="utf-8")))
    assert named, f"{doc} names no module"
    missing = sorted(
        name for name in named if not any(f == name or f.endswith("/" + name) for f in files)
    )
    assert not missing, f"{doc} names files that are not in the tree: {missing}"
