"""Rules about the web app's source that no browser run could prove on its own."""

from __future__ import annotations

import json
import re
import subprocess
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


def test_both_languages_have_the_same_messages():
    """Every key of en.js is in ko.js and the other way round (vue-i18n would fall back to
    English silently), and no component keeps user-facing text outside vue-i18n."""
    script = """
        const [en, ko] = await Promise.all(['en', 'ko'].map((l) => import(`./src/i18n/${l}.js`)))
        const keys = (o, p = '') => Object.entries(o).flatMap(([k, v]) =>
            v && typeof v === 'object' ? keys(v, `${p}${k}.`) : [`${p}${k}`])
        console.log(JSON.stringify([keys(en.default).sort(), keys(ko.default).sort()]))
    """
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=SRC.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    en, ko = json.loads(out.stdout)
    assert sorted(set(en) - set(ko)) == [], "missing in ko.js"
    assert sorted(set(ko) - set(en)) == [], "missing in en.js"
    leftovers = [
        str(path.relative_to(SRC))
        for path in sorted(SRC.rglob("*"))
        if path.suffix in {".vue", ".js"} and re.search(r"\bconst TEXT = \{", path.read_text())
    ]
    assert not leftovers, f"strings outside vue-i18n in {leftovers}"
