"""Entry point for ``tokenctl`` and ``python -m tokenctl``."""

from __future__ import annotations


def main() -> None:
    """Run the command line."""
    from tokenctl.cli.app import build_app

    build_app()(prog_name="tokenctl")


if __name__ == "__main__":
    main()
