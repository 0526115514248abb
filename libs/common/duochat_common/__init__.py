"""Shared building blocks of the duochat services."""
