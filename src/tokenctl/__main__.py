"""Entry point for ``tokenctl`` and ``python -m tokenctl``."""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line."""
    from tokenctl.cli.app import STDOUT_CLOSED, build_app, discard_stdout

    try:
        build_app()(prog_name="tokenctl")
    finally:
        # Output that is still buffered goes out now, not in the interpreter's last flush,
        # so a reader that already went away (`tokenctl list | head -1`) is handled here.
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            discard_stdout()
            sys.exit(STDOUT_CLOSED)


if __name__ == "__main__":
    main()
