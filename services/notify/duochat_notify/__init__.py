"""duochat notify service."""
