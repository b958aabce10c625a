"""Rendering of ``tokenctl key status``, ``key rotate`` and ``key reset``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenctl.iostreams import IOStreams
from tokenctl.render import write_json
from tokenctl.textsafe import safe_line

if TYPE_CHECKING:
    from tokenctl.inventory.key_reports import RotationResult, SecretSummary
    from tokenctl.services.keys import KeyReset


def render_key_status(io: IOStreams, summary: SecretSummary, *, as_json: bool) -> None:
    """The data key's entry, versions and the counts of what it protects."""
    from tokenctl.services.keys import summary_problem, summary_text

    problem = summary_problem(summary)
    if as_json:
        write_json(
            io,
            "key",
            {
                "ok": problem is None,
                "problem": problem,
                "inventory_id": summary.inventory_id,
                "keyring_service": "tokenctl",
                "key_entry": summary.key_entry,
                "key_version": summary.key_version,
                "keyring_versions": (
                    None if summary.keyring_versions is None else list(summary.keyring_versions)
                ),
                "tokens": summary.tokens,
                "client_secrets": summary.client_secrets,
                "secrets": summary.values,
                "by_version": {str(v): n for v, n in sorted(summary.by_version.items())},
                "legacy_entries_pending": summary.legacy_pending,
                "unreadable": list(summary.unreadable),
            },
        )
        return
    io.write(f"{safe_line(summary_text(summary))}\n")
    if problem is not None:
        io.warn(problem)


def render_rotation(io: IOStreams, result: RotationResult, *, as_json: bool) -> None:
    """The new version and how many secrets were re-sealed."""
    if as_json:
        write_json(
            io,
            "rotation",
            {
                "key_version": result.version,
                "resealed": result.moved,
                "resumed": result.resumed,
                "dropped_versions": list(result.dropped),
            },
        )
        return
    if result.version is None:
        io.status("Nothing to rotate: no secret is stored yet.")
        return
    resumed = " (an interrupted rotation finished)" if result.resumed else ""
    io.status(
        f"Every secret is now sealed with data key version {result.version}: "
        f"{result.moved} re-sealed{resumed}."
    )


def render_reset(io: IOStreams, reset: KeyReset, *, as_json: bool) -> None:
    """The tokens whose secrets were given up, and how to get them back."""
    if as_json:
        write_json(io, "key_reset", {"discarded": reset.discarded})
        return
    names = ", ".join(safe_line(name) for name in reset.discarded) or "none"
    io.status(
        f"Discarded the unreadable secrets of: {names}. Retrieve each token again with "
        "`tokenctl renew NAME --login` (hand-entered tokens: `--secret-stdin`); a client "
        "secret with `tokenctl definitions configure`."
    )
