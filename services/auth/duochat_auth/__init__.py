"""duochat auth service."""
