"""Rendering of ``check`` and ``renew --all`` reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenctl.iostreams import IOStreams
from tokenctl.render import plain_row, write_json
from tokenctl.textsafe import safe_line, safe_row
from tokenctl.timeutil import format_duration, to_iso

if TYPE_CHECKING:
    from tokenctl.services.check import CheckReport
    from tokenctl.services.renew_all import BulkItem, BulkReport


def render_check(io: IOStreams, report: CheckReport, *, as_json: bool) -> None:
    """The tokens that need attention, with reason and fix; a summary line on stderr."""
    from tokenctl.services.check import Severity  # loaded already: it made the report

    if as_json:
        write_json(
            io,
            "check",
            {
                "exit_code": int(report.exit_code),
                "within": format_duration(report.within),
                "checked": report.checked,
                "skipped_not_effective": report.skipped_not_effective,
                "tokens": [
                    {
                        "number": f.view.token.number,
                        "name": f.view.token.name,
                        "definition": f.view.token.definition,
                        "status": f.view.status.value,
                        "severity": f.severity,
                        "reason": f.reason,
                        "connection_expires_at": to_iso(f.view.connection_expires_at),
                        "fix": f.fix,
                    }
                    for f in report.findings
                ],
            },
        )
        return
    if report.findings and io.stdout_tty:
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("#", "Name", "Severity", "Reason", "Fix"):
            table.add_column(column, overflow="fold")
        for f in report.findings:
            style = "bold red" if f.severity is Severity.FAILING else "yellow"
            table.add_row(
                str(f.view.token.number),
                Text(safe_line(f.view.token.name)),
                Text(f.severity, style=style),
                Text(safe_line(f.reason)),
                Text(safe_line(f.fix)),
            )
        io.out.print(table)
    else:
        for f in report.findings:
            io.write(
                plain_row(
                    [str(f.view.token.number), f.view.token.name, f.severity, f.reason, f.fix]
                )
            )
    failing = sum(f.severity is Severity.FAILING for f in report.findings)
    expiring = len(report.findings) - failing
    io.status(
        f"Checked {report.checked} effective token(s): {failing} failing, {expiring} expiring "
        f"within {format_duration(report.within)}"
        + (
            f"; {report.skipped_not_effective} not effective, skipped."
            if report.skipped_not_effective
            else "."
        )
    )


def render_bulk_item(io: IOStreams, item: BulkItem) -> None:
    """One plain progress line per token (when stderr is not a terminal)."""
    io.status(safe_row([item.outcome, item.token.name] + ([item.detail] if item.detail else [])))


def render_bulk(io: IOStreams, report: BulkReport, *, as_json: bool) -> None:
    """The summary of ``renew --all``."""
    from tokenctl.services.renew_all import BulkOutcome  # loaded already: it made the report

    if as_json:
        write_json(
            io,
            "renewals",
            [
                {
                    "number": i.token.number,
                    "name": i.token.name,
                    "outcome": i.outcome,
                    "detail": i.detail or None,
                    "fix": i.fix,
                }
                for i in report.items
            ],
        )
    # Each token not renewed, a deferred one with the time it becomes possible.
    problems = [
        i
        for i in report.items
        if i.outcome in (BulkOutcome.NEEDS_LOGIN, BulkOutcome.FAILED, BulkOutcome.DEFERRED)
    ]
    if as_json:
        pass  # the document above carries every item; stderr still gets the summary
    elif io.stdout_tty and problems:
        from rich.table import Table
        from rich.text import Text

        table = Table(
            box=None,
            header_style="bold",
            pad_edge=False,
            title="Need attention",
            title_justify="left",
        )
        for column in ("#", "Name", "Outcome", "Detail", "Fix"):
            table.add_column(column, overflow="fold")
        for i in problems:
            table.add_row(
                str(i.token.number),
                Text(safe_line(i.token.name)),
                i.outcome,
                Text(safe_line(i.detail)),
                Text(safe_line(i.fix or "")),
            )
        io.out.print(table)
    else:
        for i in problems:
            io.write(plain_row([str(i.token.number), i.token.name, i.outcome, i.detail, i.fix]))
    counts: dict[str, int] = {}
    for item in report.items:
        counts[item.outcome] = counts.get(item.outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing"
    io.status(f"renew --all: {len(report.items)} token(s): {summary}.")
