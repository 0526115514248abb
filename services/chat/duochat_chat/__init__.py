"""duochat chat service."""
