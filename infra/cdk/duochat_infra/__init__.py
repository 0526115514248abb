"""duochat CDK constructs."""
