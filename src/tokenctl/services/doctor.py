"""``doctor``: paths, permissions, settings, definitions, keyring and inventory health."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tokenctl.config import StoreKind
from tokenctl.context import AppContext
from tokenctl.definitions.registry import DefinitionSet
from tokenctl.errors import ExitCode, TokenctlError
from tokenctl.fsutil import is_private, mode_bits_decide_access
from tokenctl.timeutil import format_duration


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    exit_code: ExitCode = ExitCode.ERROR


@dataclass(frozen=True)
class DoctorReport:
    """Every check, the paths looked at, and the exit code they add up to."""

    checks: list[Check]
    paths: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when nothing is broken."""
        return all(check.ok for check in self.checks)

    @property
    def exit_code(self) -> ExitCode:
        """The most specific failure: the keyring's 4 when that is all that is wrong, else 1."""
        failed = {check.exit_code for check in self.checks if not check.ok}
        if not failed:
            return ExitCode.OK
        return failed.pop() if len(failed) == 1 else ExitCode.ERROR


def _permissions(paths: list[Path]) -> Check:
    if not mode_bits_decide_access():
        return Check(
            "permissions",
            True,
            "not checked: on Windows the folders' access lists decide, inherited from your"
            " user profile (see docs/files.md)",
        )
    unique = list(dict.fromkeys(paths))  # with --home, config and data are one directory
    loose = [str(path) for path in unique if path.exists() and not is_private(path)]
    if loose:
        return Check("permissions", False, "readable by others: " + ", ".join(loose))
    return Check("permissions", True, "directories 0700 and files 0600")


def _finding(error: TokenctlError) -> str:
    """An error as a line of the report: what is wrong, then what to do."""
    return f"{error.message}; {error.hint}" if error.hint else error.message


def _inventory_check(ctx: AppContext, definition_names: set[str]) -> tuple[Check, bool]:
    """The inventory's integrity first: on a damaged file nothing else can be read.

    Also says whether the inventory can be read (tokens whose definition is missing fail
    the check, yet leave it readable).
    """
    try:
        inventory = ctx.inventory
        problems = inventory.check_integrity()
        if problems:
            from tokenctl.inventory.lookup import restore_advice

            path = ctx.paths.inventory_file
            shown = "; ".join(problems[:3]) + ("; ..." if len(problems) > 3 else "")
            damaged = f"{path} is damaged: {shown}; {restore_advice(path)}"
            return Check("inventory", False, damaged), False
        facts = inventory.describe()
        if definition_names:
            orphans = sorted(
                {t.name for t in inventory.tokens() if t.definition not in definition_names}
            )
            problems += [f"token {name!r} refers to a missing definition" for name in orphans]
    except TokenctlError as error:
        return Check("inventory", False, _finding(error)), False
    detail = (
        f"schema v{facts['schema_version']}, {facts['journal_mode']}, "
        f"{facts['tokens']} token(s), {facts['history_events']} history event(s)"
    )
    return Check("inventory", not problems, "; ".join(problems) or detail), True


def _data_key_check(ctx: AppContext, *, usable: bool) -> Check:
    """The inventory's data key: its entry, version, what it protects, whether it opens it."""
    from tokenctl.services.keys import summary_problem, summary_text

    if not usable:
        return Check("data key", True, "not looked at: the keyring or the inventory is unusable")
    try:
        summary = ctx.inventory.secret_summary(verify=True)
    except TokenctlError as error:
        return Check("data key", False, _finding(error), error.exit_code)
    problem = summary_problem(summary)
    if problem is not None:
        return Check("data key", False, problem, ExitCode.SECRET_STORE)
    return Check("data key", True, summary_text(summary))


def _orphans_check(
    ctx: AppContext, definitions: DefinitionSet | None, *, usable: bool, remove: bool
) -> Check:
    """Keyring entries no record points to; removed when asked (see services.orphans)."""
    from tokenctl.services.orphans import REMOVE_FLAG, find_orphans, remove_orphan

    if not usable:
        return Check("orphans", True, "not looked for: the keyring or the inventory is unusable")
    try:
        search = find_orphans(ctx, definitions)
        if search.refs is None:
            return Check(
                "orphans",
                True,
                "not looked for: this keyring backend cannot list its entries, so secrets "
                "no record points to cannot be found (see docs/keyring.md)",
            )
        orphans = search.refs
        others = (
            f"; {search.not_ours} entr{'y' if search.not_ours == 1 else 'ies'} written for "
            "another tokenctl home (or by an older tokenctl) left alone"
            if search.not_ours
            else ""
        )
        if not orphans:
            return Check("orphans", True, f"none ({search.entries} keyring entries{others})")
        listed = ", ".join(orphans)
        question = (
            f"{len(orphans)} keyring entr{'y' if len(orphans) == 1 else 'ies'} no record "
            f"points to: {listed}. Revoke their grants where possible and remove them?"
        )
        if not remove and ctx.io.can_prompt:
            remove = ctx.io.confirm(question, flag=REMOVE_FLAG)
        if not remove:
            return Check(
                "orphans",
                False,
                f"keyring entries no record points to (left by an interrupted add, or an "
                f"inventory restored from a backup): {listed}; run `tokenctl doctor "
                f"{REMOVE_FLAG}` to revoke their grants where possible and remove them{others}",
            )
        done = [remove_orphan(ctx, ref, definitions) for ref in orphans]
    except TokenctlError as error:
        return Check("orphans", False, _finding(error), error.exit_code)
    return Check("orphans", True, "; ".join(done) + others)


def _store_check(ctx: AppContext) -> Check:
    """The team store: where, reachable, unsealed, the identity and what it may do."""
    from tokenctl.services.store import store_lines, store_status

    try:
        status = store_status(ctx)
    except TokenctlError as error:
        return Check("store", False, _finding(error), error.exit_code)
    detail = ", ".join(f"{label} {value}" for label, value in store_lines(status.facts)[1:])
    if status.problem is not None:
        return Check("store", False, f"{status.problem}; {detail}", ExitCode.SECRET_STORE)
    return Check("store", True, f"reachable, {detail}")


def _unsaved_check(ctx: AppContext, inventory_id: str | None) -> Check:
    """Token sets a provider issued that the store could not take: each needs a renew.

    ``inventory_id``: the inventory in use, when it could be read; a set kept for
    another one (the home's store was switched since) is named as such.
    """
    from tokenctl.services.unsaved import kept_sets
    from tokenctl.textsafe import safe_line

    try:
        kept = kept_sets(ctx)
    except OSError as error:
        folder = ctx.paths.data_dir / "unsaved"
        return Check("unsaved", False, f"cannot read {folder}: {error.strerror or error}")
    if not kept:
        return Check("unsaved", True, "no token set waiting to be stored")
    described = []
    for item in kept:
        text = safe_line(item.name)
        if item.issued_at:
            text += f" (issued {safe_line(item.issued_at)})"
        if inventory_id is not None and item.inventory_id not in (None, inventory_id):
            text += f" of another inventory ({safe_line(item.inventory_id or '')})"
        described.append(text)
    count = len(kept)
    return Check(
        "unsaved",
        False,
        f"{count} token set{'s' if count != 1 else ''} the store could not take "
        f"{'are' if count != 1 else 'is'} kept, sealed, in {ctx.paths.data_dir / 'unsaved'}: "
        f"{', '.join(described)}; once the store answers, run `tokenctl renew NAME` for "
        "each: it renews with the kept refresh token and stores the result",
    )


def _inventory_id(ctx: AppContext) -> str | None:
    try:
        return ctx.inventory.inventory_id
    except TokenctlError:
        return None


def _budgets_check(ctx: AppContext, loaded: DefinitionSet | None) -> Check | None:
    """What is left of each token-call budget in use; ``None`` when no definition has limits.

    A spent budget is no fault (the next run defers, the provider's limit holds), so the
    check passes; it says from when each spent one is possible again.
    """
    if loaded is None:
        return None
    from tokenctl.services.budget import budget_state
    from tokenctl.textsafe import safe_line
    from tokenctl.timeutil import clock_text

    try:
        tokens = ctx.inventory.tokens()
        seen: set[tuple[str, str]] = set()
        described = []
        for token in tokens:
            definition = loaded.get(token.definition)
            key = (token.definition, token.account or f"#{token.number}")
            if definition is None or not definition.limits.any or key in seen:
                continue
            seen.add(key)
            # Per app and account (the daily limit); a token without one has its own.
            state = budget_state(
                ctx, definition, token.account, None if token.account else token.number
            )
            if state is None:
                continue
            limit = definition.limits.token_calls_per_day
            text = f"{definition.name} ({safe_line(token.account or f'token #{token.number}')}): "
            text += f"{state.used} of {limit}" if limit is not None else f"{state.used}"
            text += " token calls in the last 24 h"
            if state.next_call_at is not None:
                text += f", next from {clock_text(state.next_call_at, seconds=True)}Z"
            described.append(text)
    except TokenctlError as error:
        return Check("budgets", False, _finding(error))
    if not described:
        return None
    return Check("budgets", True, "; ".join(described))


def run_doctor(ctx: AppContext, *, remove_orphans: bool = False) -> DoctorReport:
    """Check everything tokenctl depends on; never raises for a broken part.

    ``remove_orphans`` removes keyring entries no record points to, revoking their grants
    where it can; on a terminal doctor asks instead.
    """
    paths = ctx.paths
    checks: list[Check] = []
    try:
        config = ctx.config
        checks.append(
            Check(
                "config",
                True,
                f"unit {config.unit or '(host name)'}, "
                f"expiring window {format_duration(config.expiring_window)}",
            )
        )
        team_store = config.store.kind is StoreKind.OPENBAO
    except TokenctlError as error:
        checks.append(Check("config", False, _finding(error)))
        team_store = False
    definition_names: set[str] = set()
    loaded: DefinitionSet | None = None
    try:
        loaded = ctx.definitions
        definitions = list(loaded)
        definition_names = {d.name for d in definitions}
        user_count = sum(1 for d in definitions if d.source != "built-in")
        checks.append(
            Check(
                "definitions",
                True,
                f"{len(definitions)} valid ({user_count} from definitions.toml)",
            )
        )
    except TokenctlError as error:
        checks.append(Check("definitions", False, _finding(error)))
    if team_store:
        store_check = _store_check(ctx)
        checks.append(store_check)
        if store_check.ok:
            checks.append(_inventory_check(ctx, definition_names)[0])
            budgets = _budgets_check(ctx, loaded)
            if budgets is not None:
                checks.append(budgets)
        # No data key, no keyring entries: OpenBao keeps and encrypts the secrets. The
        # per-token locks are still this machine's files (leases across machines: later).
        checks.append(_permissions([paths.config_dir, paths.config_file, paths.locks_dir]))
        checks.append(_unsaved_check(ctx, _inventory_id(ctx) if store_check.ok else None))
        return DoctorReport(
            checks=checks,
            paths={"config_dir": str(paths.config_dir), "config_file": str(paths.config_file)},
        )
    report = ctx.keyring.report()
    keyring_usable = report.secure and report.problem is None
    if keyring_usable:
        checks.append(Check("keyring", True, f"{report.name}: secure, read/write works"))
    else:
        checks.append(
            Check("keyring", False, f"{report.name}: {report.problem}", ExitCode.SECRET_STORE)
        )
    inventory_check, inventory_usable = _inventory_check(ctx, definition_names)
    checks.append(inventory_check)
    checks.append(_data_key_check(ctx, usable=keyring_usable and inventory_usable))
    private = [
        paths.config_dir,
        paths.data_dir,
        paths.config_file,
        paths.definitions_file,
        paths.inventory_file,
        paths.cache_dir,
        paths.locks_dir,
    ]
    checks.append(_permissions(private))
    checks.append(
        _orphans_check(
            ctx, loaded, usable=keyring_usable and inventory_usable, remove=remove_orphans
        )
    )
    checks.append(_unsaved_check(ctx, _inventory_id(ctx) if inventory_usable else None))
    budgets = _budgets_check(ctx, loaded) if inventory_usable else None
    if budgets is not None:
        checks.append(budgets)
    return DoctorReport(
        checks=checks,
        paths={
            "config_dir": str(paths.config_dir),
            "data_dir": str(paths.data_dir),
            "config_file": str(paths.config_file),
            "definitions_file": str(paths.definitions_file),
            "inventory_file": str(paths.inventory_file),
        },
    )
