#!/usr/bin/env python3
"""The duochat CDK app: `python app.py` (or `npx aws-cdk@2 synth`) writes cdk.out/."""

import os

# jsii prints a banner about Node 20 on import unless told not to.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from duochat_infra.main import build_app

if __name__ == "__main__":
    app, _ = build_app()
    app.synth()
