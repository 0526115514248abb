"""``python -m duochat_common.migrate SERVICE``: bring one service's schema to head, on the
database its ``DUOCHAT_DATABASE_URL`` names (every image runs this before it serves)."""

from __future__ import annotations

import argparse

from duochat_common.services import SERVICES, service


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m duochat_common.migrate", description=__doc__)
    parser.add_argument("service", choices=[spec.name for spec in SERVICES])
    args = parser.parse_args(argv)
    service(args.service).migrate()


if __name__ == "__main__":
    main()
