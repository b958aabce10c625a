"""Single-flight refresh across machines on the team store, and the store identity in
history and log information: real `tokenctl` processes in separate homes ("machines")
against a real OpenBao dev server and the real oidc-provider, which rotates refresh
tokens and revokes the grant when a used one comes back."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.fakes import Cli
from tests.oauth_support import RealClock, ScriptedBrowser, definition_toml, introspect
from tests.peers.openbao import OpenBao
from tests.test_team_store import _token_with_policy, draft
from tests.test_team_store_cli import Machine, _team_config
from tokenctl.context import AppContext
from tokenctl.definitions.model import Limits
from tokenctl.iostreams import IOStreams
from tokenctl.models import Actor, TokenSecrets
from tokenctl.store.openbao import openbao_inventory_factory
from tokenctl.store.openbao.inventory import OpenBaoInventory

pytestmark = pytest.mark.peers

PATH = "acme"
DEFINITION = "acme-books"


def _machines(tmp: Path, bao: OpenBao, mount: str, count: int, oidc: Any) -> list[Machine]:
    """``count`` machines on the same team inventory, each with the provider's definition."""
    source = tmp / f"{DEFINITION}.toml"
    source.write_text(definition_toml(DEFINITION, oidc.issuer, "tokenctl-public"))
    made = []
    for index in range(count):
        machine = Machine(tmp, f"m{index}", bao)
        _team_config(machine.home, bao, mount, PATH)
        added = machine("definitions", "add", "--file", str(source))
        assert added.exit_code == 0, added.stderr
        made.append(machine)
    return made


def _login(machine: Machine, oidc: Any, bao: OpenBao) -> None:
    """Add the OAuth token ``acme`` on ``machine`` by a real (scripted) browser login."""
    cli = Cli(home=machine.home, clock=RealClock(), environ={"BAO_TOKEN": bao.root_token})
    cli.browser = ScriptedBrowser(oidc, user="alice", password="alice-password")
    added = cli("add", "acme", "--definition", DEFINITION, "--yes")
    assert added.exit_code == 0, added.stderr


def _team(bao: OpenBao, mount: str, **options: float) -> OpenBaoInventory:
    return OpenBaoInventory(bao.address, bao.root_token, mount, PATH, **options)


def _make_due(team: OpenBaoInventory) -> None:
    """Let the access token's expiry pass (as time would), so `token` must refresh it."""
    token = team.resolve("acme")
    now = datetime.now(UTC)
    past = now - timedelta(minutes=1)
    team.update(token.number, {"expires_at": past}, Actor("test", "test"), now, event="test")


def _at_once(machines: list[Machine], *args: str) -> list[Any]:
    """Run ``tokenctl ARGS`` on every machine at the same moment."""
    barrier = threading.Barrier(len(machines))

    def run(machine: Machine) -> Any:
        barrier.wait()
        return machine(*args)

    with ThreadPoolExecutor(max_workers=len(machines)) as pool:
        return list(pool.map(run, machines))


def test_eight_machines_refreshing_one_token_keep_the_grant(tmp_path, openbao, openbao_kv, oidc):
    machines = _machines(tmp_path, openbao, openbao_kv, 8, oidc)
    _login(machines[0], oidc, openbao)
    team = _team(openbao, openbao_kv)
    try:
        for _round in range(2):
            _make_due(team)
            oidc.reset_stats()
            results = _at_once(machines, "token", "acme")
            assert [r.exit_code for r in results] == [0] * 8, [r.stderr for r in results]
            stats = oidc.stats()
            # One refresh for all eight machines: the others used the winner's result.
            assert stats["grant_error"].get("refresh_token", 0) == 0, stats
            assert stats["grant_success"].get("refresh_token", 0) == 1, stats
            stored = team.secrets(team.resolve("acme").number)
            assert stored is not None
            assert {r.stdout.strip() for r in results} == {stored.access_token}
        # `renew --all` (the async face, the lease polled on its event loop) likewise.
        _make_due(team)
        oidc.reset_stats()
        results = _at_once(machines, "renew", "--all", "--within", "10m", "--json")
        assert [r.exit_code for r in results] == [0] * 8, [r.stderr for r in results]
        outcomes = [e["outcome"] for r in results for e in r.json()["renewals"]]
        assert outcomes.count("refreshed") == 1, outcomes
        assert set(outcomes) <= {"refreshed", "concurrent"}
        stats = oidc.stats()
        assert stats["grant_error"].get("refresh_token", 0) == 0, stats
        assert stats["grant_success"].get("refresh_token", 0) == 1, stats
        # `renew` refreshes every time: in turn, each with the refresh token stored last.
        oidc.reset_stats()
        results = _at_once(machines, "renew", "acme")
        assert [r.exit_code for r in results] == [0] * 8, [r.stderr for r in results]
        stats = oidc.stats()
        assert stats["grant_error"].get("refresh_token", 0) == 0, stats
        served = stats["grant_success"].get("refresh_token", 0)
        assert 1 <= served <= 8
        waited = sum("already renewed by another tokenctl process" in r.stderr for r in results)
        assert waited == 8 - served
        # The grant survived: the stored tokens work, and one more refresh succeeds.
        stored = team.secrets(team.resolve("acme").number)
        assert stored is not None and stored.refresh_token
        assert introspect(oidc, stored.access_token)["active"] is True
        final = machines[3]("renew", "acme")
        assert final.exit_code == 0, final.stderr
        assert "refreshed without a browser" in final.stderr
        lease = team.kv.read(team.layout.lease(team.resolve("acme").number))
        assert lease is not None and lease.data["released"] is True  # every holder gave it back
    finally:
        team.close()


_HOLD_LEASE = """
import sys, time
from tokenctl.store.openbao.inventory import OpenBaoInventory
address, token, mount, path, number, ttl = sys.argv[1:]
team = OpenBaoInventory(address, token, mount, path, retry_for=0.0)  # ttl as given
lease = team.refresh_lease(int(number), "a holder that is killed", float(ttl))
assert lease.try_acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_a_killed_holder_blocks_others_only_until_its_lease_expires(
    tmp_path, openbao, openbao_kv, oidc
):
    laptop, cron = _machines(tmp_path, openbao, openbao_kv, 2, oidc)
    _login(laptop, oidc, openbao)
    team = _team(openbao, openbao_kv)
    number = team.resolve("acme").number
    ttl = 6.0
    arguments = [openbao.address, openbao.root_token, openbao_kv, PATH, str(number), str(ttl)]
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LEASE, *arguments],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        held_at = time.monotonic()
        holder.send_signal(signal.SIGKILL)  # killed holding the lease: never released
        holder.wait(10)
        oidc.reset_stats()
        renewed = cron("renew", "acme")
        done_at = time.monotonic()
        assert renewed.exit_code == 0, renewed.stderr
        assert "refreshed without a browser" in renewed.stderr
        assert oidc.stats()["grant_success"].get("refresh_token", 0) == 1
        # It waited for the lease to expire (by the server's clock), and not much longer.
        assert ttl - 0.5 <= done_at - held_at <= ttl + 10, done_at - held_at
        # The lease the killed holder left was taken over, then released.
        lease = team.kv.read(team.layout.lease(number))
        assert lease is not None and lease.data["released"] is True
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        team.close()


def test_the_lease_is_exclusive_taken_over_when_expired_and_never_released_by_an_old_holder(
    openbao, openbao_kv
):
    # No outage allowance: the leases last exactly the ttl given.
    first, second = (
        _team(openbao, openbao_kv, retry_for=0.0),
        _team(openbao, openbao_kv, retry_for=0.0),
    )
    try:
        mine = first.refresh_lease(7, "first", 2.0)
        theirs = second.refresh_lease(7, "second", 60.0)
        assert mine.try_acquire()
        assert not theirs.try_acquire()  # held and alive
        mine.release()
        assert theirs.try_acquire()  # released: taken at once
        theirs.release()
        # A holder that overran its lease: it is taken over, and its late release
        # leaves the new holder's lease in place.
        late = first.refresh_lease(7, "late", 1.0)
        assert late.try_acquire()
        taker = second.refresh_lease(7, "taker", 60.0)
        deadline = time.monotonic() + 10
        while not taker.try_acquire():
            assert time.monotonic() < deadline, "an expired lease was never taken over"
            time.sleep(0.2)
        late.release()
        other = first.refresh_lease(7, "other", 60.0)
        assert not other.try_acquire()
        stored = first.kv.read(first.layout.lease(7))
        assert stored is not None and stored.data["holder"] == "taker"
        assert stored.data["took_over_from"] == "late"
        taker.release()
        assert other.try_acquire()
        other.release()
    finally:
        first.close()
        second.close()


# -- the store identity in history and log information ----------------------------------


def test_history_and_log_record_the_store_identity(tmp_path, openbao, openbao_kv):
    root = openbao.client()
    policy = (
        f'path "{openbao_kv}/*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}'
    )
    root.sys.create_or_update_policy("lease-support", policy)
    role_id, secret_id = openbao.approle_role("support", ["lease-support"])
    login = openbao.client().auth.approle.login(role_id=role_id, secret_id=secret_id)
    support_token = login["auth"]["client_token"]
    entity = login["auth"]["entity_id"]
    assert entity

    laptop = Machine(tmp_path, "laptop", openbao)  # the root token
    cron = Machine(tmp_path, "cron", openbao, support_token)
    for machine in (laptop, cron):
        _team_config(machine.home, openbao, openbao_kv, PATH)
    added = laptop("add", "acme", "--definition", "api-key", "--secret-stdin", input="p4ss")
    assert added.exit_code == 0, added.stderr
    renewed = cron("renew", "acme", "--secret-stdin", input="n3w")
    assert renewed.exit_code == 0, renewed.stderr

    shown = cron("show", "acme", "--json").json()["token"]
    support = f"approle (role support; entity {entity})"
    found = openbao.client().auth.token.lookup_self()["data"]
    root_identity = f"{found['display_name'] or 'token'} (policies root)"
    assert shown["log"]["created_identity"] == root_identity
    assert shown["log"]["updated_identity"] == support
    assert shown["log"]["updated_by"] and shown["log"]["updated_unit"] == "machine"
    newest, created = shown["history"][0], shown["history"][-1]
    assert (newest["event"], newest["identity"]) == ("renewed", support)
    assert (created["event"], created["identity"]) == ("created", root_identity)
    text = cron("show", "acme")
    assert text.exit_code == 0, text.stderr
    assert f"on machine as {support}" in text.stdout
    assert f"as {root_identity}" in text.stdout


def test_the_local_store_records_no_store_identity(cli):
    assert cli("add", "acme", "--definition", "api-key", "--secret-stdin", input="p").exit_code == 0
    shown = cli("show", "acme", "--json").json()["token"]
    assert shown["log"]["created_identity"] is None
    assert shown["log"]["updated_identity"] is None
    assert shown["history"] and all(event["identity"] is None for event in shown["history"])
    assert " as " not in cli("show", "acme").stdout.split("History")[0]


def _context(tmp_path: Path, bao: OpenBao, mount: str) -> AppContext:
    streams = IOStreams(
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
        stdin_tty=False,
        stdout_tty=False,
        stderr_tty=False,
        color=False,
        width=200,
    )
    return AppContext(
        io=streams,
        environ={"TOKENCTL_HOME": str(tmp_path / "home")},
        inventory_factory=openbao_inventory_factory(bao.address, bao.root_token, mount, PATH),
        user_name=lambda: "tester",
        host_name=lambda: "laptop",
    )


#: A provider client that is never called: its definition sets no token-call limits.
_NO_CALLS = SimpleNamespace(definition=SimpleNamespace(limits=Limits()))


def test_a_refresh_whose_lease_was_taken_over_keeps_the_newer_token_set(
    tmp_path, openbao, openbao_kv
):
    from tokenctl.oauth.grants import RefreshedState
    from tokenctl.services.refresh import _Steps

    ctx = _context(tmp_path, openbao, openbao_kv)
    start = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    added = ctx.inventory.add(
        draft("acme", secret_set_at=start, has_refresh_token=True),
        ctx.actor(),
        start,
        secrets=TokenSecrets(access_token="a0", refresh_token="r0"),
    )
    # No provider call here (its answer is given): a client of a definition without limits.
    steps = _Steps(ctx, added, cast(Any, _NO_CALLS))
    assert steps.reread() == "r0"  # read under the lease
    # Meanwhile another machine, which took over the lease after it expired, stored its set.
    other = _team(openbao, openbao_kv)
    later = start + timedelta(minutes=2)
    other.update(
        added.number,
        {"secret_set_at": later},
        Actor("support", "cron"),
        later,
        event="renewed",
        secrets=TokenSecrets(access_token="a1", refresh_token="r1"),
    )
    late = start + timedelta(minutes=3)
    ours = RefreshedState(
        TokenSecrets(access_token="a2", refresh_token="r2"), {"secret_set_at": late}, "refresh"
    )
    outcome = steps.record(ours)
    assert outcome.refreshed is False
    assert "newer token set" in outcome.notes[0]
    assert outcome.token.secret_set_at == later
    assert other.secrets(added.number) == TokenSecrets(access_token="a1", refresh_token="r1")
    # Unchallenged, the same step stores its set (check-and-set on what it read).
    steps = _Steps(ctx, other.get(added.number), cast(Any, _NO_CALLS))
    assert steps.reread() == "r1"
    assert steps.record(ours).refreshed is True
    assert other.secrets(added.number) == TokenSecrets(access_token="a2", refresh_token="r2")
    other.close()
    ctx.close()


def test_an_identity_that_may_not_take_the_lease_is_told_so_and_refreshes_nothing(
    tmp_path, openbao, openbao_kv, oidc
):
    (laptop,) = _machines(tmp_path, openbao, openbao_kv, 1, oidc)
    _login(laptop, oidc, openbao)
    everything = ["create", "read", "update", "delete", "list"]
    policy = (
        f'path "{openbao_kv}/*" {{ capabilities = {everything} }}\n'.replace("'", '"')
        + f'path "{openbao_kv}/data/{PATH}/leases/*" {{ capabilities = ["deny"] }}\n'
    )
    token = _token_with_policy(openbao, "no-leases", policy)
    cron = Machine(tmp_path, "m0", openbao, token)  # the same home, another identity
    oidc.reset_stats()
    renewed = cron("renew", "acme")
    assert renewed.exit_code == 4, renewed.stderr
    assert f"{openbao_kv}/{PATH}/leases/" in renewed.stderr
    assert "may not" in renewed.stderr
    assert oidc.stats()["grant_success"].get("refresh_token", 0) == 0


def test_a_lease_outlasts_the_store_outages_its_holder_may_wait_out(openbao, openbao_kv):
    """The holder's re-read and its writes may each retry through an outage of up to
    ``retry_for``: the lease written covers both, beyond the provider call's ttl."""
    team = OpenBaoInventory(
        openbao.address, openbao.root_token, openbao_kv, PATH + "-outage", retry_for=30.0
    )
    try:
        lease = team.refresh_lease(7, "a holder", 90.0)
        assert lease.try_acquire()
        written = team.kv.read(team.layout.lease(7))
        assert written is not None and written.data["ttl"] == 150.0
        lease.release()
    finally:
        team.close()
