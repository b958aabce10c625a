"""Rendering of the doctor's report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenctl.iostreams import IOStreams
from tokenctl.render import write_json
from tokenctl.textsafe import safe_line

if TYPE_CHECKING:
    from tokenctl.services.doctor import DoctorReport


def render_doctor(io: IOStreams, report: DoctorReport, *, as_json: bool) -> None:
    """One line per check, then the paths."""
    if as_json:
        write_json(
            io,
            "doctor",
            {
                "ok": report.ok,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in report.checks],
                "paths": report.paths,
            },
        )
        return
    for check in report.checks:
        detail = safe_line(check.detail)  # can quote a damaged file or a keyring's answer
        mark = "ok " if check.ok else "FAIL"
        if io.stdout_tty and io.color:
            from rich.text import Text

            io.out.print(
                Text.assemble(
                    (f"{mark:4} ", "green" if check.ok else "bold red"),
                    f"{check.name:12} {detail}",
                )
            )
        else:
            io.write(f"{mark:4} {check.name:12} {detail}\n")
    for key, value in report.paths.items():
        io.write(f"     {key:16} {safe_line(value)}\n")
