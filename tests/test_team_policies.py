"""The sample policies of docs/team.md, the very files docs/policies/*.hcl, on the real
OpenBao dev server: each role runs the real commands, and the server (not tokenctl)
allows what team.md's table says and refuses the rest (exit 4, nothing written)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import Cli
from tests.oauth_support import RealClock, ScriptedBrowser, configure
from tests.peers.openbao import OpenBao
from tokenctl.store.openbao import openbao_inventory_factory

pytestmark = pytest.mark.peers

DOCS = Path(__file__).resolve().parent.parent / "docs"
POLICIES = DOCS / "policies"
ROLES = ("consultant", "support", "ci-check", "ci-token")
#: The placeholders of the sample policies, as docs/team.md documents them.
MOUNT, PATH, DEFINITION = "tokenctl", "acme-consultancy", "exact-online-nl"


@pytest.fixture(scope="module")
def bao(openbao: OpenBao) -> OpenBao:
    """The session's dev server with the mount of the samples and their policies loaded."""
    if f"{MOUNT}/" not in openbao.client().sys.list_mounted_secrets_engines()["data"]:
        openbao.enable_kv(MOUNT)
    for role in ROLES:
        openbao.write_policy(f"tokenctl-{role}", (POLICIES / f"{role}.hcl").read_text())
    return openbao


def _remove_all(bao: OpenBao, folder: str) -> None:
    kv = bao.client().secrets.kv.v2
    for key in _keys(bao, folder):
        if key.endswith("/"):
            _remove_all(bao, f"{folder}/{key.rstrip('/')}")
        else:
            kv.delete_metadata_and_all_versions(f"{folder}/{key}", mount_point=MOUNT)


def _keys(bao: OpenBao, folder: str) -> list[str]:
    from hvac.exceptions import InvalidPath

    try:
        found = bao.client().secrets.kv.v2.list_secrets(folder, mount_point=MOUNT)
    except InvalidPath:
        return []
    return [str(key) for key in found["data"]["keys"]]


def snapshot(bao: OpenBao, folder: str = PATH) -> dict[str, int]:
    """Every key of the inventory with its current version: what a write would change."""
    kv = bao.client().secrets.kv.v2
    found: dict[str, int] = {}
    for key in _keys(bao, folder):
        path = f"{folder}/{key.rstrip('/')}"
        if key.endswith("/"):
            found.update(snapshot(bao, path))
        else:
            found[path] = kv.read_secret_metadata(path, mount_point=MOUNT)["data"][
                "current_version"
            ]
    return found


@pytest.fixture
def team(bao: OpenBao) -> Iterator[OpenBao]:
    """The samples' inventory (mount ``tokenctl``, path ``acme-consultancy``), empty."""
    _remove_all(bao, PATH)
    yield bao
    _remove_all(bao, PATH)


@pytest.fixture
def role(team: OpenBao, tmp_path: Path, oidc: Any) -> Any:
    """A machine whose store token has one sample policy: ``role("ci-check")``.

    Each has a home of its own, with the definition DEFINITION on the real provider.
    """

    def machine(name: str) -> Cli:
        token = team.create_token([f"tokenctl-{name}"])
        cli = Cli(
            home=tmp_path / name,
            clock=RealClock(),  # type: ignore[arg-type]
            inventory_factory=openbao_inventory_factory(team.address, token, MOUNT, PATH),
        )
        configure(cli, tmp_path, oidc, name=DEFINITION)
        return cli

    return machine


@pytest.fixture
def consultant(role: Any, oidc: Any) -> Cli:
    """The consultant, who has filled the inventory: ``books`` (OAuth), ``acme`` (static)."""
    cli: Cli = role("consultant")
    cli.browser = ScriptedBrowser(oidc)
    added = cli("add", "books", "--definition", DEFINITION, "--yes")
    cli.browser = None
    assert added.exit_code == 0, added.stderr
    added = cli("add", "acme", "--definition", "api-key", "--secret-stdin", input="p4ss")
    assert added.exit_code == 0, added.stderr
    return cli


def may(cli: Cli) -> dict[str, Any]:
    """What ``store status`` says the identity may do."""
    status = cli("store", "status", "--json")
    assert status.exit_code == 0, status.stderr
    found: dict[str, Any] = status.json()["store"]["may"]
    return found


def refused(cli: Cli, *args: str, input: str = "", what: str) -> None:
    """The command fails with exit 4, the server's refusal named."""
    result = cli(*args, input=input)
    assert result.exit_code == 4, (args, result.exit_code, result.stdout, result.stderr)
    assert f"this identity may not {what} at {MOUNT}/{PATH}/" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_ci_check_reads_the_records_and_nothing_else(consultant, role, team, oidc):
    ci = role("ci-check")
    listed = ci("list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [t["name"] for t in listed.json()["tokens"]] == ["books", "acme"]
    shown = ci("show", "books", "--json")
    assert shown.exit_code == 0, shown.stderr
    assert [e["event"] for e in shown.json()["token"]["history"]] == ["retrieved", "created"]
    checked = ci("check", "--json")
    assert checked.exit_code == consultant("check", "--json").exit_code, checked.stderr
    assert checked.exit_code in (0, 10, 11) and checked.json()["check"]["checked"] == 2
    assert may(ci) == {
        "list_records": True,
        "read_records": True,
        "read_secrets": False,
        "read_secrets_of": [],
        "write": False,
    }
    before = snapshot(team)
    refused(ci, "token", "books", what="read secrets")
    refused(ci, "token", "acme", what="read secrets")
    refused(ci, "exec", "books", "--", sys.executable, "-c", "", what="read secrets")
    refused(
        ci,
        "add",
        "new",
        "--definition",
        "api-key",
        "--secret-stdin",
        input="x",
        what="write the inventory",
    )
    # Refused before the pass code is read, not after.
    refused(ci, "renew", "acme", "--secret-stdin", input="new", what="write the inventory")
    refused(ci, "renew", "books", what="read secrets")
    refused(ci, "disable", "acme", what="write the inventory")
    oidc.reset_stats()
    # Refused before the provider is asked: it would rotate refresh tokens never stored.
    refused(ci, "renew", "--all", what="write the inventory")
    assert oidc.stats()["grant_success"].get("refresh_token", 0) == 0
    refused(ci, "delete", "acme", "--yes", what="read secrets")
    assert snapshot(team) == before  # not one key written


def test_ci_token_reads_the_secrets_of_one_definition(consultant, role, team):
    ci = role("ci-token")
    served = ci("token", "books")
    assert served.exit_code == 0, served.stderr
    assert served.stdout == consultant("token", "books").stdout
    assert re.fullmatch(r"\S+\n", served.stdout)
    access_token = served.stdout.strip()
    script = f"import os, sys; sys.exit(os.environ['TOKENCTL_ACCESS_TOKEN'] != {access_token!r})"
    ran = ci("exec", "books", "--", sys.executable, "-c", script)
    assert ran.exit_code == 0, ran.stderr
    assert ci("list").exit_code == 0
    assert "read secrets  only of exact-online-nl\n" in ci("store", "status").stdout
    assert may(ci) == {
        "list_records": True,
        "read_records": True,
        "read_secrets": False,
        "read_secrets_of": [DEFINITION],
        "write": False,
    }
    before = snapshot(team)
    other = ci("token", "acme")  # the other definition's
    assert other.exit_code == 4, other.stderr
    assert f"this identity may not read secrets at {MOUNT}/{PATH}/secrets/api-key/2" in (
        other.stderr
    )
    refused(ci, "renew", "books", what="read secrets")  # the client's: before the provider
    refused(ci, "delete", "books", "--yes", what="write secrets")
    assert snapshot(team) == before


def test_support_renews_and_may_not_add_or_delete(consultant, role, team, oidc):
    support = role("support")
    before_token = consultant("token", "books").stdout
    renewed = support("renew", "books")  # a refresh at the real provider
    assert renewed.exit_code == 0, renewed.stderr
    assert consultant("token", "books").stdout != before_token
    static = support("renew", "acme", "--secret-stdin", input="n3w")
    assert static.exit_code == 0, static.stderr
    assert consultant("token", "acme").stdout == "n3w\n"
    assert support("disable", "acme").exit_code == 0
    assert support("enable", "acme").exit_code == 0
    everything = support("renew", "--all")
    assert everything.exit_code == 0, everything.stderr
    assert support("token", "books").exit_code == 0
    events = consultant("show", "books", "--json").json()["token"]["history"]
    assert [e["event"] for e in events] == ["renewed", "renewed", "retrieved", "created"]
    assert may(support) == {
        "list_records": True,
        "read_records": True,
        "read_secrets": True,
        "read_secrets_of": ["api-key", DEFINITION],
        "write": True,
    }
    before = snapshot(team)
    refused(
        support,
        "add",
        "new",
        "--definition",
        "api-key",
        "--secret-stdin",
        input="x",
        what="write the inventory",
    )
    refused(support, "delete", "acme", "--yes", what="write secrets")
    # A client secret support may not set: refused before definitions.toml changes.
    definitions = support.home / "definitions.toml"
    before_file = definitions.read_bytes() if definitions.exists() else None
    refused(
        support, "definitions", "configure", DEFINITION, "--client-id", "another-app",
        "--client-secret-stdin", input="s3cret", what="write secrets",
    )  # fmt: skip
    assert (definitions.read_bytes() if definitions.exists() else None) == before_file
    assert snapshot(team) == before


def test_consultant_does_everything(consultant, team):
    assert may(consultant) == {
        "list_records": True,
        "read_records": True,
        "read_secrets": True,
        "read_secrets_of": ["api-key", DEFINITION],
        "write": True,
    }
    assert consultant("token", "acme").stdout == "p4ss\n"
    assert consultant("renew", "books").exit_code == 0
    deleted = consultant("delete", "acme", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    assert [t["name"] for t in consultant("list", "--json").json()["tokens"]] == ["books"]
    checks = {c["name"]: c for c in consultant("doctor", "--json").json()["doctor"]["checks"]}
    assert checks["inventory"]["ok"] is True, checks["inventory"]  # its folders listed


def test_team_md_names_every_sample_policy_and_its_placeholders():
    team_md = (DOCS / "team.md").read_text()
    for role_name in ROLES:
        assert f"policies/{role_name}.hcl" in team_md
        text = (POLICIES / f"{role_name}.hcl").read_text()
        assert f'"{MOUNT}/data/{PATH}/' in text
    assert f"secrets/{DEFINITION}/*" in (POLICIES / "ci-token.hcl").read_text()


def test_ci_check_and_support_send_signed_notices_through_their_policies(consultant, role):
    """The sample policies let `check` (ci-check) and `renew --all` (support) keep the
    shared notice marks and read the signing secret the consultant stored."""
    from tests.test_notify import SECRET, Receiver, verify

    receiver = Receiver()
    try:
        added = consultant("notify", "add", receiver.url, "--secret-stdin", input=SECRET)
        assert added.exit_code == 0, added.stderr
        past = consultant(
            "renew", "acme", "--secret-stdin", "--expires-at", "2020-01-01", input="old"
        )
        assert past.exit_code == 0, past.stderr
        for name in ("ci-check", "support"):
            machine = role(name)
            machine.home.mkdir(parents=True, exist_ok=True)
            (machine.home / "config.toml").write_text(
                f'[[webhooks]]\nurl = "{receiver.url}"\nsigned = true\n'
            )
            checked = machine("check")
            assert checked.exit_code == 11, checked.stderr
            assert "webhook" not in checked.stderr, checked.stderr  # no refusal, no failure
        # ci-check sent the notice; support's check found it sent already.
        assert [b["event"] for b in receiver.bodies()] == ["failing"]
        assert receiver.bodies()[0]["name"] == "acme"
        assert verify(*receiver.received[0], SECRET, time.time())
    finally:
        receiver.close()
