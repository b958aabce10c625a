"""Entry point for ``tokenctl`` and ``python -m tokenctl``."""

from __future__ import annotations

import gc
import os
import sys

#: Container allocations between two runs of the youngest-generation garbage collection
#: (Python's default is 700). A run allocates many objects that live until it ends
#: (`list --json` of 10,000 tokens: over 100,000), which the collector would scan again and
#: again for nothing: ~10% of that command's time. Cycles are still collected.
GC_THRESHOLD = 50_000
#: Set by the shell completion scripts (`tokenctl --show-completion`): "complete_SHELL".
COMPLETE_VAR = "_TOKENCTL_COMPLETE"


def _plain_token_ref(argv: list[str]) -> tuple[str | None, str] | None:
    """``(home, REF)`` for exactly ``tokenctl [--home DIR] token REF``, else ``None``."""
    home = None
    if len(argv) >= 2 and argv[0] == "--home":
        home, argv = argv[1], argv[2:]
    if len(argv) == 2 and argv[0] == "token" and not argv[1].startswith("-"):
        return home, argv[1]
    return None


def _token_fast_path(home: str | None, ref: str) -> int:
    """``tokenctl token REF`` without building the Typer application.

    Scripts call it before every request, so it must cost no more than reading the
    keyring itself: the quick path (:mod:`tokenctl.services.quick_token`) answers the
    plain case, and the same service function as the full command line does the rest,
    its errors reported the same way. Any other form of the command takes the full path.
    """
    from datetime import UTC, datetime
    from pathlib import Path

    from tokenctl.errors import debug_requested, report_failure
    from tokenctl.paths import resolve_paths
    from tokenctl.secrets.keyring_store import OsKeyring
    from tokenctl.services.quick_token import quick_access_token

    paths = resolve_paths(Path(home) if home else None, os.environ)
    keyring = OsKeyring(backend_cache=paths.keyring_backend_cache)

    def full_path() -> str:
        # Everything but the plain case: refresh, errors and hints (see quick_token).
        from tokenctl.context import AppContext
        from tokenctl.services.access import current_access_token

        ctx = AppContext.from_environment().with_options(home=paths.home_override, debug=False)
        ctx.keyring_factory = lambda _paths: keyring
        try:
            return current_access_token(ctx, ref)
        finally:
            ctx.close()

    try:
        access_token = quick_access_token(paths, ref, datetime.now(UTC), keyring.get_text)
        if access_token is None:
            access_token = full_path()
    except (KeyboardInterrupt, Exception) as error:
        return report_failure(error, sys.stderr, debug=debug_requested(os.environ))
    finally:
        keyring.close()
    sys.stdout.write(access_token + "\n")
    return 0


def main() -> None:
    """Run the command line."""
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    fast = _plain_token_ref(sys.argv[1:])
    # A shell completion request (Typer's protocol: the words are in the environment,
    # whatever argv says) is answered by the application, never by the fast path.
    try:
        if fast is not None and COMPLETE_VAR not in os.environ:
            sys.exit(_token_fast_path(*fast))
        from tokenctl.cli.app import build_app

        build_app()(prog_name="tokenctl")
    finally:
        # Output that is still buffered goes out now, not in the interpreter's last flush,
        # so a reader that already went away (`tokenctl list | head -1`) is handled here.
        try:
            sys.stdout.flush()
        except BrokenPipeError as error:
            from tokenctl.errors import report_failure

            sys.exit(report_failure(error, sys.stderr, debug=False))


if __name__ == "__main__":
    main()
