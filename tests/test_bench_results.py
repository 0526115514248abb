"""bench/RESULTS.md: a benchmark's run replaces its own section, and notes by hand survive."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "bench_results", Path(__file__).resolve().parents[1] / "bench" / "results.py"
)
assert SPEC is not None and SPEC.loader is not None
results = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(results)


def test_a_new_section_is_appended_then_replaced_in_place(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    results.record("a", "## A - run 1", path)
    results.record("b", "## B - run 1", path)
    path.write_text(path.read_text().replace("<!-- a:end -->", "<!-- a:end -->\n\nnote on A"))

    results.record("a", "## A - run 2\n", path)

    text = path.read_text()
    assert text.startswith("# Benchmark results\n")
    assert "run 1" not in text.split("<!-- b:start -->")[0]
    assert text.count("## A") == 1 and "## A - run 2" in text
    assert "note on A" in text and "## B - run 1" in text
    assert text.index("## A - run 2") < text.index("note on A") < text.index("## B - run 1")
