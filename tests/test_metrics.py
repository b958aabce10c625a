"""`check --format openmetrics` / `--format prometheus`: parsed with prometheus_client's
parsers and held against the inventory (`list --json`, the records), through a real
`tokenctl` process, in-process for the edge cases, and on the team store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

from tests.fakes import Cli, Clock
from tests.oauth_support import ScriptedBrowser, configure
from tests.proc import tokenctl

STATUSES = ["valid", "expiring", "expired", "invalid", "insufficient", "unknown"]
PER_TOKEN = {
    "tokenctl_token_connection_expires_in_seconds",
    "tokenctl_token_connection_expiry_timestamp_seconds",
    "tokenctl_token_access_expiry_timestamp_seconds",
    "tokenctl_token_status",
    "tokenctl_token_check",
    "tokenctl_token_last_renewal_timestamp_seconds",
    "tokenctl_token_last_probe_timestamp_seconds",
    "tokenctl_token_last_probe_result",
}
NO_KEYRING = "keyring.backends.fail.Keyring"


class Metrics:
    """A parsed exposition: families by name, and the samples of one series."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.families = {family.name: family for family in parse_om(text)}

    def series(self, name: str, **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of ``name`` whose labels include ``labels``, keyed by all its labels."""
        return {
            tuple(sorted(sample.labels.items())): sample.value
            for sample in self.families[name].samples
            if all(sample.labels.get(key) == value for key, value in labels.items())
        }

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample of ``name`` with ``labels``; ``None`` when there is none."""
        found = self.series(name, **labels)
        assert len(found) <= 1, found
        return next(iter(found.values()), None)

    def state(self, name: str, number: int) -> str:
        """The state that is true in stateset ``name`` for token ``number``."""
        found = self.series(name, number=str(number))
        true = [dict(key)[name] for key, value in found.items() if value == 1]
        assert len(true) == 1 and len(found) > 1, found  # one true state among the others
        return true[0]

    def numbers(self, name: str) -> set[int]:
        """The tokens that have a sample of ``name``."""
        return {int(sample.labels["number"]) for sample in self.families[name].samples}


def timestamp(iso: str | None) -> float | None:
    if iso is None:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def assert_against_inventory(metrics: Metrics, listed: list[dict[str, Any]]) -> None:
    """Every effective token's series say what its `list --json` record says."""
    effective = [t for t in listed if t["state"] == "effective"]
    assert metrics.numbers("tokenctl_token_status") == {t["number"] for t in effective}
    now = metrics.value("tokenctl_check_timestamp_seconds")
    assert now is not None
    for token in effective:
        number = token["number"]
        labels = {"number": str(number)}
        ends = timestamp(token["connection_expires_at"])
        assert metrics.value("tokenctl_token_connection_expiry_timestamp_seconds", **labels) == (
            pytest.approx(ends, abs=1) if ends is not None else None
        )
        remaining = metrics.value("tokenctl_token_connection_expires_in_seconds", **labels)
        if ends is None:
            assert remaining is None
        else:
            assert remaining == pytest.approx(ends - now, abs=1)
        access = timestamp(token["expires_at"])
        assert metrics.value("tokenctl_token_access_expiry_timestamp_seconds", **labels) == (
            pytest.approx(access, abs=1) if access is not None else None
        )
        renewed = timestamp(token["refreshed_at"])
        assert metrics.value("tokenctl_token_last_renewal_timestamp_seconds", **labels) == (
            pytest.approx(renewed, abs=1) if renewed is not None else None
        )
        probed = timestamp(token["probed_at"])
        assert metrics.value("tokenctl_token_last_probe_timestamp_seconds", **labels) == (
            pytest.approx(probed, abs=1) if probed is not None else None
        )
        if token["probe_result"] is None:
            assert metrics.series("tokenctl_token_last_probe_result", **labels) == {}
        else:
            assert (
                metrics.state("tokenctl_token_last_probe_result", number) == (token["probe_result"])
            )
        assert metrics.state("tokenctl_token_status", number) == token["status"]
        [series] = metrics.series("tokenctl_token_status", **labels, tokenctl_token_status="valid")
        assert dict(series) | {"tokenctl_token_status": "x"} == {
            "number": str(number),
            "name": token["name"],
            "definition": token["definition"],
            "tenant": (token.get("attributes") or {}).get("tenant", ""),
            "tokenctl_token_status": "x",
        }
    for status in STATUSES:
        expected = sum(t["status"] == status for t in effective)
        assert metrics.value("tokenctl_tokens", status=status) == expected


# -- a real tokenctl process -------------------------------------------------------------


@pytest.fixture
def wall_cli(tmp_path: Path) -> Cli:
    """In-process, on the wall clock: the real process that reads its home uses that one."""
    return Cli(home=tmp_path / "home", clock=Clock(now=datetime.now(UTC)))


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOKENCTL_", "BAO_"))}
    # `check` without --probe reads only the inventory: no keyring may be needed.
    return {**env, "HOME": str(tmp_path), "PYTHON_KEYRING_BACKEND": NO_KEYRING}


def test_openmetrics_of_a_real_process_match_the_inventory(wall_cli, oidc, tmp_path):
    cli = wall_cli
    configure(cli, tmp_path, oidc)
    cli.browser = ScriptedBrowser(oidc)
    assert cli("add", "acme", "--definition", "acme-books", "--yes").exit_code == 0
    assert cli("check", "--probe").exit_code == 0  # records the probe: valid
    for name, expiry in (("soon", "2d"), ("far", "60d")):
        added = cli(
            "add",
            name,
            "--definition",
            "api-key",
            "--secret-stdin",
            "--expires-in",
            expiry,
            input="p4ss",
        )
        assert added.exit_code == 0, added.stderr
    assert (
        cli("add", "nokey", "--definition", "api-key", "--secret-stdin", input="k").exit_code == 0
    )
    assert cli("add", "later", "--definition", "acme-books", "--no-login").exit_code == 0
    assert cli("add", "off", "--definition", "api-key", "--secret-stdin", input="x").exit_code == 0
    assert cli("disable", "off").exit_code == 0
    listed = cli("list", "--json").json()["tokens"]

    ran = tokenctl("check", "--format", "openmetrics", home=cli.home, env=_env(tmp_path))
    # The exit code is check's own (11: `later` has no secret), the metrics are all there.
    assert ran.exit_code == 11, ran.stderr
    assert ran.stdout.endswith("# EOF\n")
    assert ran.stderr == ""  # no summary line: the output is data
    metrics = Metrics(ran.stdout)
    assert set(metrics.families) >= PER_TOKEN
    assert metrics.families["tokenctl_token_status"].type == "stateset"
    assert metrics.families["tokenctl_token_connection_expires_in_seconds"].unit == "seconds"
    assert_against_inventory(metrics, listed)
    number = {t["name"]: t["number"] for t in listed}
    assert metrics.state("tokenctl_token_check", number["soon"]) == "expiring"
    assert metrics.state("tokenctl_token_check", number["far"]) == "ok"
    assert metrics.state("tokenctl_token_check", number["later"]) == "failing"  # no secret
    assert metrics.state("tokenctl_token_last_probe_result", number["acme"]) == "valid"
    assert metrics.value("tokenctl_token_last_renewal_timestamp_seconds", number="1") is not None
    assert number["off"] not in metrics.numbers("tokenctl_token_status")  # not effective
    assert metrics.value("tokenctl_tokens_not_effective") == 1
    assert metrics.value("tokenctl_check_exit_code") == 11
    assert metrics.value("tokenctl_check_window_seconds") == 7 * 86400
    assert "p4ss" not in ran.stdout

    # The selection flags select the series: --definition, REFs, --within.
    books = tokenctl(
        "check",
        "--format",
        "openmetrics",
        "--definition",
        "api-key",
        "--within",
        "90d",
        home=cli.home,
        env=_env(tmp_path),
    )
    assert books.exit_code == 10, books.stderr
    selected = Metrics(books.stdout)
    assert selected.numbers("tokenctl_token_status") == {
        number["soon"],
        number["far"],
        number["nokey"],
    }
    assert selected.state("tokenctl_token_check", number["far"]) == "expiring"  # within 90d
    assert selected.value("tokenctl_check_window_seconds") == 90 * 86400
    one = tokenctl("check", "far", "--format", "openmetrics", home=cli.home, env=_env(tmp_path))
    assert one.exit_code == 0 and Metrics(one.stdout).numbers("tokenctl_token_check") == {
        number["far"]
    }


def test_textfile_cron_line_writes_the_file_despite_the_exit_code(wall_cli, tmp_path):
    """docs/monitoring.md's cron line: the file is renamed into place on 0, 10 and 11."""
    cli = wall_cli
    add = cli(
        "add", "soon", "--definition", "api-key", "--secret-stdin", "--expires-in", "1d", input="s"
    )
    assert add.exit_code == 0, add.stderr
    directory = tmp_path / "textfile"
    directory.mkdir()
    target = directory / "tokenctl.prom"
    line = (
        f"{sys.executable} -m tokenctl check --format prometheus > {target}.tmp;"
        f" case $? in 0|10|11) mv -f {target}.tmp {target};; *) rm -f {target}.tmp;; esac"
    )
    env = {**_env(tmp_path), "TOKENCTL_HOME": str(cli.home)}
    subprocess.run(["/bin/sh", "-c", line], env=env, check=True, timeout=60)
    text = target.read_text(encoding="utf-8")
    assert not (directory / "tokenctl.prom.tmp").exists()
    families = {f.name: f for f in parse_prometheus(text)}
    # The Prometheus text format: no stateset type (node_exporter refuses it), same series.
    assert families["tokenctl_token_status"].type == "gauge"
    assert "# EOF" not in text and "stateset" not in text
    status = {
        s.labels["tokenctl_token_status"]: s.value
        for s in families["tokenctl_token_status"].samples
    }
    assert status == dict.fromkeys(STATUSES, 0.0) | {"expiring": 1.0}
    assert families["tokenctl_check_exit_code"].samples[0].value == 10
    # A broken home (exit 1) leaves the last good file in place.
    (cli.home / "config.toml").write_text("expiring_window = 7\n", encoding="utf-8")
    subprocess.run(["/bin/sh", "-c", line], env=env, check=True, timeout=60)
    assert target.read_text(encoding="utf-8") == text
    assert not (directory / "tokenctl.prom.tmp").exists()


# -- in-process edge cases -----------------------------------------------------------------


def _patch(cli: Cli, ref: str, **changes: Any) -> None:
    """Change a record as a login or probe would (bypassing add's name rules)."""
    from tokenctl.inventory.sqlite import SqliteInventory
    from tokenctl.models import Actor

    inventory = SqliteInventory(cli.home / "inventory.sqlite3", lambda: cli.keyring)
    try:
        number = inventory.resolve(ref).number
        inventory.update(number, changes, Actor("tester", "testhost"), cli.clock.now, event="test")
    finally:
        inventory.close()


def add_static(cli: Cli, name: str, *extra: str) -> None:
    added = cli("add", name, "--definition", "api-key", "--secret-stdin", *extra, input="s3cret")
    assert added.exit_code == 0, added.stderr


def test_labels_are_escaped_and_parse_back_exactly(cli):
    add_static(cli, "weird", "--expires-in", "30d")
    name = 'we"ird\\na\nme'
    tenant = 'Acme "B.V."\\Holland\nline two'
    _patch(cli, "weird", name=name, attributes={"tenant": tenant, "tenant_id": "42"})
    result = cli("check", "--format", "openmetrics")
    assert result.exit_code == 0, result.stderr
    metrics = Metrics(result.stdout)
    [series] = metrics.series("tokenctl_token_status", tokenctl_token_status="valid")
    assert dict(series)["name"] == name
    assert dict(series)["tenant"] == tenant
    assert 'name="we\\"ird\\\\na\\nme"' in result.stdout  # the format's own escapes
    # One line per sample: no raw line feed inside a label.
    assert all(line.startswith(("#", "tokenctl_")) for line in result.stdout.splitlines())


def test_control_characters_in_labels_are_never_written_raw(cli):
    add_static(cli, "ctl")
    _patch(cli, "ctl", attributes={"tenant": "a\x1b[2Jb\rc\td\x9b"})
    result = cli("check", "--format", "openmetrics")
    assert not any(ch in result.stdout for ch in "\x1b\r\t\x9b")
    [series] = Metrics(result.stdout).series("tokenctl_token_check", tokenctl_token_check="ok")
    assert dict(series)["tenant"] == "a\\x1b[2Jb\\rc\\td\\x9b"  # tokenctl's escape notation


def test_unknown_expiry_leaves_the_expiry_gauges_out(cli):
    add_static(cli, "forever")  # an API key without an expiry: status unknown
    add_static(cli, "dated", "--expires-in", "3d")
    metrics = Metrics(cli("check", "--format", "openmetrics").stdout)
    assert metrics.state("tokenctl_token_status", 1) == "unknown"
    assert metrics.state("tokenctl_token_check", 1) == "ok"
    for name in (
        "tokenctl_token_connection_expires_in_seconds",
        "tokenctl_token_connection_expiry_timestamp_seconds",
        "tokenctl_token_access_expiry_timestamp_seconds",
    ):
        assert metrics.numbers(name) == {2}, name
    assert metrics.value("tokenctl_token_connection_expires_in_seconds", number="2") == 3 * 86400
    assert metrics.value("tokenctl_token_connection_expiry_timestamp_seconds", number="2") == (
        (cli.clock.now + timedelta(days=3)).timestamp()
    )
    assert metrics.value("tokenctl_tokens", status="unknown") == 1
    assert metrics.value("tokenctl_tokens", status="expiring") == 1
    cli.clock.advance(days=4)
    later = Metrics(cli("check", "--format", "openmetrics").stdout)
    assert later.value("tokenctl_token_connection_expires_in_seconds", number="2") == -86400
    assert later.state("tokenctl_token_status", 2) == "expired"
    assert later.state("tokenctl_token_check", 2) == "failing"


def test_not_effective_tokens_are_left_out(cli):
    add_static(cli, "on", "--expires-in", "30d")
    add_static(cli, "off", "--expires-in", "1d")
    assert cli("disable", "off").exit_code == 0
    result = cli("check", "--format", "openmetrics", "off", "on", "on")  # `on` named twice
    assert result.exit_code == 0, result.stderr
    metrics = Metrics(result.stdout)
    for name in PER_TOKEN - {
        "tokenctl_token_last_renewal_timestamp_seconds",
        "tokenctl_token_last_probe_timestamp_seconds",
        "tokenctl_token_last_probe_result",
    }:
        assert metrics.numbers(name) == {1}, name
    assert metrics.value("tokenctl_tokens_not_effective") == 1
    assert sum(metrics.value("tokenctl_tokens", status=s) or 0 for s in STATUSES) == 1


def test_the_account_label_only_when_configured(cli):
    add_static(cli, "acct")
    _patch(cli, "acct", account="alice@example.com")
    off = cli("check", "--format", "openmetrics")
    assert "alice@example.com" not in off.stdout
    assert "account" not in {
        k for s in Metrics(off.stdout).families["tokenctl_token_check"].samples for k in s.labels
    }
    (cli.home / "config.toml").write_text("metrics_account_label = true\n", encoding="utf-8")
    on = Metrics(cli("check", "--format", "openmetrics").stdout)
    [series] = on.series("tokenctl_token_status", tokenctl_token_status="unknown")
    assert dict(series)["account"] == "alice@example.com"
    (cli.home / "config.toml").write_text('metrics_account_label = "yes"\n', encoding="utf-8")
    bad = cli("check", "--format", "openmetrics")
    assert bad.exit_code == 1 and bad.stdout == ""
    assert "'metrics_account_label' must be true or false" in bad.stderr


def test_probe_results_and_renewals_come_from_the_record(cli):
    add_static(cli, "probed")
    at = cli.clock.now - timedelta(hours=2)
    _patch(cli, "probed", probed_at=at, probe_result="unreachable", refreshed_at=at)
    metrics = Metrics(cli("check", "--format", "openmetrics").stdout)
    assert metrics.state("tokenctl_token_last_probe_result", 1) == "unreachable"
    assert (
        metrics.value("tokenctl_token_last_probe_timestamp_seconds", number="1") == at.timestamp()
    )
    assert (
        metrics.value("tokenctl_token_last_renewal_timestamp_seconds", number="1") == at.timestamp()
    )


def test_format_flags_combine_as_documented(cli):
    add_static(cli, "soon", "--expires-in", "2d")
    assert cli("check", "--format", "json").json() == cli("check", "--json").json()
    assert cli("check", "--json", "--format", "json").exit_code == 10
    text = cli("check", "--format", "text")
    assert text.exit_code == 10 and text.stdout.startswith("1\tsoon\texpiring")
    conflict = cli("check", "--json", "--format", "openmetrics")
    assert conflict.exit_code == 2 and conflict.stdout == ""
    assert "--json and --format openmetrics" in conflict.stderr
    quiet = cli("check", "--quiet", "--format", "prometheus")
    assert quiet.exit_code == 2 and "--quiet" in quiet.stderr
    unknown = cli("check", "--format", "yaml")
    assert unknown.exit_code == 2 and "'yaml' is not one of" in unknown.stderr
    both = [cli("check", "--format", fmt).stdout for fmt in ("openmetrics", "prometheus")]
    om = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in parse_om(both[0])
        for s in f.samples
    }
    prom = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in parse_prometheus(both[1])
        for s in f.samples
    }
    assert om == prom  # the same series in both formats


def test_an_empty_inventory_is_a_valid_exposition(cli):
    result = cli("check", "--format", "openmetrics")
    assert result.exit_code == 0
    metrics = Metrics(result.stdout)
    assert metrics.families["tokenctl_token_status"].samples == []
    assert metrics.value("tokenctl_tokens", status="valid") == 0


# -- the team store --------------------------------------------------------------------------


def test_openmetrics_on_the_team_store(tmp_path, openbao, openbao_kv):
    from tests.test_team_store_cli import Machine, _team_config

    machine = Machine(tmp_path, "cron", openbao)
    _team_config(machine.home, openbao, openbao_kv)
    added = machine(
        "add",
        "team-key",
        "--definition",
        "api-key",
        "--secret-stdin",
        "--expires-in",
        "2d",
        input="t0p",
    )
    assert added.exit_code == 0, added.stderr
    ran = machine("check", "--format", "openmetrics")
    assert ran.exit_code == 10, ran.stderr
    metrics = Metrics(ran.stdout)
    listed = machine("list", "--json").json()["tokens"]
    assert_against_inventory(metrics, listed)
    assert metrics.state("tokenctl_token_check", 1) == "expiring"
    assert "t0p" not in ran.stdout


# -- node_exporter's textfile collector (when installed) -------------------------------------

NODE_EXPORTER = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")


@pytest.mark.skipif(
    NODE_EXPORTER is None,
    reason="node_exporter not installed (Debian: prometheus-node-exporter); not a required peer",
)
def test_node_exporter_reads_the_prometheus_format_and_refuses_openmetrics(wall_cli, tmp_path):
    """The real collector: --format prometheus is read; why the docs do not use openmetrics."""
    import socket
    import time
    import urllib.request

    add_static(wall_cli, "soon", "--expires-in", "1d")
    directory = tmp_path / "textfile"
    directory.mkdir()
    env = {**_env(tmp_path), "TOKENCTL_HOME": str(wall_cli.home)}
    for fmt in ("prometheus", "openmetrics"):
        ran = subprocess.run(
            [sys.executable, "-m", "tokenctl", "check", "--format", fmt],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode == 10, ran.stderr
        (directory / f"{fmt}.txt").write_text(ran.stdout, encoding="utf-8")

    def scrape(name: str) -> str:
        for old in directory.glob("*.prom"):
            old.unlink()
        (directory / f"{name}.txt").rename(directory / "tokenctl.prom")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        exporter = subprocess.Popen(
            [
                str(NODE_EXPORTER),
                "--collector.disable-defaults",
                "--collector.textfile",
                f"--collector.textfile.directory={directory}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                        return r.read().decode("utf-8")
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        finally:
            exporter.terminate()
            exporter.wait(timeout=10)

    served = {f.name: f for f in parse_prometheus(scrape("prometheus"))}
    assert served["node_textfile_scrape_error"].samples[0].value == 0
    status = {
        s.labels["tokenctl_token_status"]: s.value for s in served["tokenctl_token_status"].samples
    }
    assert status == dict.fromkeys(STATUSES, 0.0) | {"expiring": 1.0}
    assert served["tokenctl_check_exit_code"].samples[0].value == 10
    refused = {f.name: f for f in parse_prometheus(scrape("openmetrics"))}
    assert refused["node_textfile_scrape_error"].samples[0].value == 1
    assert "tokenctl_token_status" not in refused
