"""bench/RESULTS.md: each benchmark owns one section between its own markers, and a new run
replaces that section in place. Notes written by hand go outside the markers and survive."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def record(name: str, section: str, path: Path = RESULTS) -> None:
    """Put ``section`` (without markers) between ``name``'s markers, appending them if new."""
    start, end = markers(name)
    block = f"{start}\n{section.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    if start in text and end in text:
        before, _, rest = text.partition(start)
        _, _, after = rest.partition(end)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
