"""What a user name may be, and the canonical form that makes two names the same.

Decision (issue 12): a new name must be ASCII letters, digits, ``.``, ``_`` or ``-`` once it is
NFKC-normalised (so full-width letters become ASCII ones), 3-32 characters. No other script is
accepted, which rules out look-alikes (a Cyrillic a for a Latin one) without a confusables
table. Case is kept for display, but two names are the same account when their canonical forms
(NFKC + casefold) are equal, and a unique index on the canonical form holds that on every
database. Names that read as the system speaking are reserved.
"""

from __future__ import annotations

import re
import unicodedata

ALLOWED = re.compile(r"[a-z0-9._-]{3,32}")
RESERVED = frozenset(
    {
        "admin",
        "administrator",
        "root",
        "system",
        "sysadmin",
        "support",
        "help",
        "moderator",
        "mod",
        "staff",
        "duochat",
        "official",
        "security",
        "anonymous",
        "null",
        "undefined",
        "nobody",
        "everyone",
        "owner",
        "api",
        "auth",
        "www",
    }
)


def canonical(name: str) -> str:
    """The form two names are compared in: NFKC, then casefold (``HappyDaddy`` -> ``happydaddy``).

    Casefolding can leave a string that is not NFKC-stable (``ﬀ``), hence the second pass."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
