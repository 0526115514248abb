"""Keep the cycle collector's full passes short in long-running services.

CPython's collector walks every tracked object on a full (generation 2) pass. A service holds
hundreds of thousands of them after startup (modules, FastAPI and pydantic models, SQLAlchemy
metadata and caches), none of which ever become garbage, so each full pass took 80-120 ms in
the chat benchmark and stalled every socket of the process while it ran. ``gc.freeze()`` after
startup moves them to a permanent generation that the collector skips: full passes then walk
only what the service created since (about 10 ms with 400 busy connections).
"""

from __future__ import annotations

import gc

# A full pass after this many middle-generation passes (CPython's default is 10). What a
# service creates and keeps after startup (connections, caches) grows in small steps, and the
# default made the chat benchmark's instances run a full pass every 3 s; this makes it about
# every 30 s, while short-lived cycles are still collected by the young passes as before.
FULL_PASS_EVERY = 100

_settled = False


def settle_heap() -> bool:
    """Collect once, freeze what survives, and space out full passes.

    Only the first call in a process does it (the embedded server starts four services in one
    process, and a test session starts many apps); returns whether this call did."""
    global _settled
    if _settled:
        return False
    _settled = True
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_EVERY)
    return True
