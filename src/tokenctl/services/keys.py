"""``tokenctl key``: the inventory's data key — its status, rotation and, when lost, reset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenctl.context import AppContext
from tokenctl.errors import TokenctlError

if TYPE_CHECKING:
    from tokenctl.inventory.key_reports import RotationResult, SecretSummary


def key_status(ctx: AppContext) -> SecretSummary:
    """The data key's keyring entry and versions, and what it protects (every value opened)."""
    ctx.inventory.ensure_secrets_writable()
    return ctx.inventory.secret_summary(verify=True)


def summary_problem(summary: SecretSummary) -> str | None:
    """What is wrong with the data key and its secrets, or ``None`` when nothing is."""
    if summary.key_problem is not None:
        return summary.key_problem
    sealed = summary.tokens + summary.client_secrets
    if summary.keyring_versions is None and sealed:
        return (
            f"the OS keyring has no entry {summary.key_entry}: the {summary.values} secrets "
            "sealed with it cannot be read; restore the entry (docs/keyring.md), or give them "
            "up with `tokenctl key reset`"
        )
    if summary.unreadable:
        return (
            f"the secrets of {', '.join(summary.unreadable)} do not open with the data key; "
            "renew those tokens to store new ones"
        )
    return None


def summary_text(summary: SecretSummary) -> str:
    """One line for ``doctor``: entry, version, what it protects, what waits to be moved."""
    sealed = summary.tokens + summary.client_secrets
    counts = (
        f"{summary.values} secret(s) of {summary.tokens} token(s) and "
        f"{summary.client_secrets} client secret(s)"
    )
    if summary.key_problem is not None:
        text = f"data key entry tokenctl/{summary.key_entry} is unusable: {counts} unreadable"
    elif summary.keyring_versions is None and not sealed:
        text = f"no data key yet (made with the first secret, as keyring entry {summary.key_entry})"
    elif summary.keyring_versions is None:
        text = f"data key tokenctl/{summary.key_entry} is not in the keyring: {counts} unreadable"
    else:
        versions = summary.keyring_versions
        rotating = (
            f" (the entry holds versions {', '.join(map(str, versions))}: a rotation is "
            "unfinished; `tokenctl key rotate` finishes it and drops the older ones)"
            if len(versions) > 1
            else ""
        )
        text = (
            f"data key tokenctl/{summary.key_entry} version {summary.key_version}{rotating} "
            f"protects {counts}"
        )
    if summary.legacy_pending:
        text += (
            f"; {summary.legacy_pending} token(s) still in per-token keyring entries, moved "
            "into the inventory by the next command that needs a secret"
        )
    return text


@dataclass(frozen=True)
class KeyReset:
    """What ``key reset`` gave up: the tokens whose secrets were discarded."""

    discarded: list[str]


def rotate_key(ctx: AppContext) -> RotationResult:
    """Seal every secret under a new data key version; one rotation at a time.

    Interrupted anywhere, every secret stays readable and the next run finishes the
    same rotation (see ``SqliteInventory.rotate_key``).
    """
    from tokenctl.fsutil import exclusive_lock

    ctx.inventory.ensure_secrets_writable()
    with exclusive_lock(ctx.paths.key_rotation_lock):
        result = ctx.inventory.rotate_key(
            progress=lambda moved: ctx.io.status(f"Re-sealed {moved} secret(s)...")
        )
    if result.stuck:
        raise TokenctlError(
            f"key rotation to version {result.version} is not finished: the secrets of "
            f"{', '.join(result.stuck)} do not open, so they cannot be re-sealed",
            hint="renew (or delete) those tokens, then run `tokenctl key rotate` again; "
            "every other secret is already sealed with the new version",
        )
    return result


def reset_key(ctx: AppContext, *, assume_yes: bool) -> KeyReset:
    """Give up the secrets that cannot be opened (all of them when the key is lost).

    Refused while the key is there and opens every secret. Asks first on a terminal;
    without one, ``--yes`` answers.
    """
    ctx.inventory.ensure_secrets_writable()
    summary = ctx.inventory.secret_summary(verify=True)
    if summary_problem(summary) is None:
        raise TokenctlError(
            "the data key of this inventory is in the OS keyring and opens every secret: "
            "nothing to reset",
            hint="to seal everything under a new key, run `tokenctl key rotate`",
        )
    if summary.keyring_versions is None:
        what = (
            f"all {summary.values} stored secret(s) of {summary.tokens} token(s) and "
            f"{summary.client_secrets} client secret(s)"
        )
    else:
        what = f"the secrets of {', '.join(summary.unreadable)}, which do not open"
    question = (
        f"Discard {what}? Each token concerned then needs renewing (a login, or a new pass code)"
    )
    if not assume_yes and not ctx.io.confirm(question, flag="--yes"):
        raise TokenctlError("nothing reset: not confirmed")
    return KeyReset(ctx.inventory.reset_key(ctx.actor(), ctx.now()))
