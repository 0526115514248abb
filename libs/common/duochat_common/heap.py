"""Keep the cycle collector's full passes short in long-running services.

CPython's collector walks every tracked object on a full (generation 2) pass. A service holds
hundreds of thousands of them after startup (modules, FastAPI and pydantic models, SQLAlchemy
metadata and caches), none of which ever become garbage, yet each full pass walks them all and
stalls every socket of the process while it runs. ``gc.freeze()`` after startup moves them to a
permanent generation that the collector skips: full passes then walk only what the service
created since.

The thresholds stay CPython's: rarer full passes would keep the garbage cycles that uvicorn
makes on every WebSocket upgrade (its HTTP protocol object and parser) in memory for longer.
The measured pauses and memory are in bench/RESULTS.md ("Notes moved from the code").
"""

from __future__ import annotations

import gc

_settled = False


def settle_heap() -> bool:
    """Collect once, then freeze what survives.

    Only the first call in a process does it (the embedded server starts four services in one
    process, and a test session starts many apps); returns whether this call did."""
    global _settled
    if _settled:
        return False
    _settled = True
    gc.collect()
    gc.freeze()
    return True
