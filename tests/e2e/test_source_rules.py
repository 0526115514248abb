"""Rules about the web app's source that no browser run could prove on its own."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "web" / "src"
HTML_SINKS = re.compile(r"v-html|innerHTML|outerHTML|insertAdjacentHTML|document\.write")


def test_text_is_never_rendered_as_html():
    offenders = [
        f"{path.relative_to(SRC)}:{n}: {line.strip()}"
        for path in sorted(SRC.rglob("*"))
        if path.suffix in {".vue", ".js"}
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if HTML_SINKS.search(line)
    ]
    assert not offenders, "HTML sinks in web/src:\n" + "\n".join(offenders)


def test_no_assets_from_a_cdn():
    """The app must work offline: every script and stylesheet comes from the build."""
    index = (SRC.parent / "index.html").read_text()
    assert not re.search(r"""(src|href)=["']https?://""", index)
