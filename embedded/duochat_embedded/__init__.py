"""duochat in one process (the embedded mode)."""
