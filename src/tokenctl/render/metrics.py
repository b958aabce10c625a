r"""``check --format openmetrics`` and ``--format prometheus``: the check as metrics.

Written by hand, not with prometheus_client: the format is a few lines of text, and
tokenctl must not carry a metrics library to print them (prometheus_client is a test
dependency; its parsers check this output). docs/monitoring.md lists every metric.

Two expositions of the same series:

* **OpenMetrics** 1.0 text (``application/openmetrics-text``): ``# TYPE``, ``# UNIT``,
  ``# HELP`` per family, statesets for the status, ``# EOF`` at the end.
* **Prometheus** text 0.0.4: what node_exporter's textfile collector reads. It rejects a
  file with ``# TYPE ... stateset`` ("unknown metric type"), so a stateset is typed
  ``gauge`` there, with the very same samples (what prometheus_client itself does).

Label values are escaped as both formats define (backslash, double quote, line feed);
other control characters, which the formats would carry raw, are written in
tokenctl's escape notation (``\x1b``, see :mod:`tokenctl.textsafe`): metrics files get
shown on terminals, and a raw carriage return breaks line-based tools.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from tokenctl.iostreams import IOStreams
from tokenctl.models import Status
from tokenctl.render import write_data
from tokenctl.textsafe import safe_line

if TYPE_CHECKING:
    from tokenctl.services.check import CheckReport
    from tokenctl.services.tokens import TokenView

#: The attribute a login or probe records the tenant (organisation, division, company) in.
TENANT_ATTRIBUTE = "tenant"


class Exposition(StrEnum):
    """Which text format the metrics are written in."""

    OPENMETRICS = "openmetrics"
    PROMETHEUS = "prometheus"


class MetricType(StrEnum):
    """The OpenMetrics types tokenctl uses."""

    GAUGE = "gauge"
    STATESET = "stateset"


class CheckState(StrEnum):
    """The states of ``tokenctl_token_check``: what ``check`` makes of the token."""

    OK = "ok"
    EXPIRING = "expiring"
    FAILING = "failing"


#: The states of ``tokenctl_token_last_probe_result`` (the values of ProbeResult; the
#: probe module is not imported here: it loads the OAuth machinery).
PROBE_STATES = ("valid", "invalid", "unreachable")

PREFIX = "tokenctl_"


@dataclass
class Family:
    """One metric family: its metadata and its samples (labels, value)."""

    name: str
    type: MetricType
    help: str
    unit: str = ""
    samples: list[tuple[Sequence[tuple[str, str]], float]] | None = None

    def add(self, labels: Sequence[tuple[str, str]], value: float) -> None:
        """Append one sample."""
        if self.samples is None:
            self.samples = []
        self.samples.append((labels, value))

    def add_states(
        self, labels: Sequence[tuple[str, str]], states: Iterable[str], true: str
    ) -> None:
        """Append a stateset point: one sample per state, 1 for ``true``, 0 for the rest."""
        for state in states:
            self.add([*labels, (self.name, state)], 1 if state == true else 0)


def escape_label(value: str) -> str:
    r"""A label value for either format: ``\``, ``"`` and line feed escaped as they define.

    Every other control character (and the invisible ones that reorder text) is first put
    in tokenctl's escape notation, whose backslash is then escaped like any other.
    """
    text = "\n".join(safe_line(part) for part in value.split("\n"))
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    """A sample value: an integer without a decimal point, else to the millisecond."""
    if isinstance(value, int):
        return str(value)
    return repr(round(value, 3))


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()


def token_labels(view: TokenView, *, account_label: bool) -> list[tuple[str, str]]:
    """The labels of a token's series: number, name, definition, tenant (and account)."""
    token = view.token
    labels = [
        ("number", str(token.number)),
        ("name", token.name),
        ("definition", token.definition),
        ("tenant", token.attributes.get(TENANT_ATTRIBUTE, "")),
    ]
    if account_label:
        labels.append(("account", token.account or ""))
    return labels


def check_families(report: CheckReport, *, account_label: bool) -> list[Family]:
    """Every metric family of a check report, in the order they are written."""
    from tokenctl.services.check import Severity  # loaded already: it made the report

    def family(suffix: str, kind: MetricType, help_text: str, unit: str = "") -> Family:
        return Family(PREFIX + suffix, kind, help_text, unit)

    remaining = family(
        "token_connection_expires_in_seconds",
        MetricType.GAUGE,
        "Seconds until the connection expires unless someone acts (negative: expired); "
        "absent when unknown.",
        "seconds",
    )
    connection_end = family(
        "token_connection_expiry_timestamp_seconds",
        MetricType.GAUGE,
        "When the connection expires (Unix time); absent when unknown.",
        "seconds",
    )
    access_end = family(
        "token_access_expiry_timestamp_seconds",
        MetricType.GAUGE,
        "When the access token (a hand-entered token: the token) expires (Unix time); "
        "absent when unknown.",
        "seconds",
    )
    status = family(
        "token_status", MetricType.STATESET, "The token's status (docs/commands.md#status)."
    )
    verdict = family(
        "token_check",
        MetricType.STATESET,
        "What check makes of the token: ok, expiring within the window, or failing now.",
    )
    renewed = family(
        "token_last_renewal_timestamp_seconds",
        MetricType.GAUGE,
        "When the token was last obtained by a login or a refresh (Unix time); absent when never.",
        "seconds",
    )
    probed = family(
        "token_last_probe_timestamp_seconds",
        MetricType.GAUGE,
        "When a probe last asked the provider about the token (Unix time); absent when never.",
        "seconds",
    )
    probe_result = family(
        "token_last_probe_result",
        MetricType.STATESET,
        "What the provider said at the last probe; absent when never probed.",
    )
    severities = {f.view.token.number: f.severity for f in report.findings}
    verdicts = {Severity.EXPIRING: CheckState.EXPIRING, Severity.FAILING: CheckState.FAILING}
    counts = dict.fromkeys(Status, 0)
    now = report.now
    for view in report.views:
        labels = token_labels(view, account_label=account_label)
        token = view.token
        counts[view.status] += 1
        expiry = view.connection_expires_at
        if expiry is not None:
            remaining.add(labels, (expiry - now).total_seconds())
            connection_end.add(labels, _timestamp(expiry))
        if token.expires_at is not None:
            access_end.add(labels, _timestamp(token.expires_at))
        status.add_states(labels, (s.value for s in Status), view.status.value)
        severity = severities.get(token.number)
        verdict.add_states(
            labels,
            (s.value for s in CheckState),
            (verdicts[severity] if severity is not None else CheckState.OK).value,
        )
        if token.refreshed_at is not None:
            renewed.add(labels, _timestamp(token.refreshed_at))
        if token.probed_at is not None:
            probed.add(labels, _timestamp(token.probed_at))
        if token.probe_result in PROBE_STATES:
            probe_result.add_states(labels, PROBE_STATES, token.probe_result)
    totals = family("tokens", MetricType.GAUGE, "Checked (effective) tokens by status, 0 included.")
    for state, count in counts.items():
        totals.add([("status", state.value)], count)
    not_effective = family(
        "tokens_not_effective", MetricType.GAUGE, "Selected tokens skipped as not effective."
    )
    not_effective.add([], report.skipped_not_effective)
    exit_code = family(
        "check_exit_code",
        MetricType.GAUGE,
        "The exit code of this check: 0 fine, 10 some expiring, 11 some failing.",
    )
    exit_code.add([], int(report.exit_code))
    window = family(
        "check_window_seconds",
        MetricType.GAUGE,
        "The window (--within, or expiring_window) within which a token counts as expiring.",
        "seconds",
    )
    window.add([], round(report.within.total_seconds()))
    ran = family(
        "check_timestamp_seconds",
        MetricType.GAUGE,
        "When this check ran (Unix time): alert when it stops being renewed.",
        "seconds",
    )
    ran.add([], _timestamp(now))
    return [
        remaining,
        connection_end,
        access_end,
        status,
        verdict,
        renewed,
        probed,
        probe_result,
        totals,
        not_effective,
        exit_code,
        window,
        ran,
    ]


def exposition(families: Iterable[Family], fmt: Exposition) -> str:
    """The families as OpenMetrics text (ending ``# EOF``) or Prometheus text 0.0.4."""
    lines: list[str] = []
    openmetrics = fmt is Exposition.OPENMETRICS
    for item in families:
        kind = item.type if openmetrics else MetricType.GAUGE
        lines.append(f"# TYPE {item.name} {kind}")
        if openmetrics and item.unit:
            lines.append(f"# UNIT {item.name} {item.unit}")
        lines.append(f"# HELP {item.name} {_escape_help(item.help)}")
        for labels, value in item.samples or ():
            rendered = ",".join(f'{key}="{escape_label(text)}"' for key, text in labels)
            series = f"{item.name}{{{rendered}}}" if labels else item.name
            lines.append(f"{series} {_number(value)}")
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"


def render_check_metrics(
    io: IOStreams, report: CheckReport, fmt: Exposition, *, account_label: bool
) -> None:
    """Write the check report to stdout as metrics (no summary on stderr: it is data)."""
    write_data(io, exposition(check_families(report, account_label=account_label), fmt))
