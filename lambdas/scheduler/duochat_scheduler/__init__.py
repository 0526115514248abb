"""Business-hours scheduler for the duochat stack."""
