"""duochat boards service."""
