"""Entry point for ``tokenctl`` and ``python -m tokenctl``."""

from __future__ import annotations

import gc
import sys

#: Container allocations between two runs of the youngest-generation garbage collection
#: (Python's default is 700). A run allocates many objects that live until it ends
#: (`list --json` of 10,000 tokens: over 100,000), which the collector would scan again and
#: again for nothing: ~10% of that command's time. Cycles are still collected.
GC_THRESHOLD = 50_000


def main() -> None:
    """Run the command line."""
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
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
