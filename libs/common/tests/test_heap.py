"""A service's startup ends with the heap settled: what startup built is frozen out of the
cycle collector's full passes, once per process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, gc
    from contextlib import asynccontextmanager
    from duochat_common.app import build_app
    from duochat_common.heap import settle_heap

    seen = {}

    @asynccontextmanager
    async def lifespan(app):
        seen["during startup"] = gc.get_freeze_count()
        app.state.built = [[] for _ in range(1000)]  # what a startup makes, all tracked
        yield

    async def main():
        app = build_app(title="t", routers=[], lifespan=lifespan)
        async with app.router.lifespan_context(app):
            seen["after startup"] = gc.get_freeze_count()
            seen["again"] = settle_heap()
            built = app.state.built[0]
            seen["collector sees it"] = any(o is built for o in gc.get_objects())
        print(*seen.values())

    asyncio.run(main())
    """
)


def test_startup_freezes_the_heap_once_per_process() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    during, after, again, visible = int(out[0]), int(out[1]), out[2], out[3]
    assert during == 0
    assert after > 50_000  # modules, the app, and the lists built at startup
    assert visible == "False"  # full passes no longer walk what startup built
    assert again == "False"
