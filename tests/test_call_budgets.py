"""Provider call budgets: a definition's token-call limits, counted per app and account.

The decision (:func:`tokenctl.services.budget.next_call_at`) as a property; the count on
both stores, concurrent writers included (SQLite; a real OpenBao shared by two
"machines"); and end to end with the Exact Online double, whose 200 calls a day the
built-in declares: tokenctl defers instead of passing it, ``token`` serves the still
valid access token, ``show``/``doctor`` say what is left.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakes import Cli
from tests.peers.exact import ExactDouble, serving
from tests.test_provider_exact import (
    CLIENT_ID,
    CLIENT_SECRET,
    DEFINITION,
    ShiftedClock,
    paste_login,
    setup_home,
)
from tokenctl.definitions.model import Limits
from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.models import TokenCall
from tokenctl.services.budget import WINDOW, next_call_at

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@settings(max_examples=80, deadline=None)
@given(
    per_day=st.integers(min_value=1, max_value=6),
    interval_minutes=st.one_of(st.none(), st.integers(min_value=1, max_value=300)),
    asks=st.lists(
        st.tuples(st.integers(min_value=0, max_value=600), st.sampled_from([1, 2, None])),
        min_size=1,
        max_size=40,
    ),
)
def test_calls_allowed_one_by_one_never_pass_the_limits(per_day, interval_minutes, asks):
    """Two tokens of one app and account, and logins of a new token (``None``)."""
    interval = None if interval_minutes is None else timedelta(minutes=interval_minutes)
    limits = Limits(token_calls_per_day=per_day, min_token_interval=interval)
    now, made = T0, []
    for gap, token in asks:
        now += timedelta(minutes=gap)
        until = next_call_at(made, now, limits, token)
        if until is None:
            made.append(TokenCall(now, token))
        else:  # refused: the answer is in the future, and a call then is allowed
            assert until > now
            assert next_call_at(made, until, limits, token) is None
    for call in made:  # the daily limit holds for the app and account
        in_window = [m for m in made if call.at - WINDOW < m.at <= call.at]
        assert len(in_window) <= per_day
    for token in (1, 2):  # the interval holds for each token, not across them
        own = [call.at for call in made if call.token == token]
        if interval is not None:
            assert all(b - a >= interval for a, b in itertools.pairwise(own))


def test_the_interval_is_each_tokens_own():
    limits = Limits(token_calls_per_day=200, min_token_interval=timedelta(minutes=9, seconds=30))
    made = [TokenCall(T0, 1)]
    assert next_call_at(made, T0 + timedelta(minutes=2), limits, 2) is None  # another token
    assert next_call_at(made, T0 + timedelta(minutes=2), limits, 1) == T0 + timedelta(
        minutes=9, seconds=30
    )


def test_sqlite_count_is_atomic_across_connections(tmp_path):
    path = tmp_path / "inventory.sqlite3"
    SqliteInventory(path).close()  # made once, as tokenctl does
    limits = Limits(token_calls_per_day=25)
    counted: list[bool] = []

    def machine() -> None:
        inventory = SqliteInventory(path)
        try:
            for _ in range(20):
                now = datetime.now(UTC)
                until = inventory.count_token_call(
                    "budget", TokenCall(now, 1),
                    lambda calls, now=now: next_call_at(calls, now, limits, 1),
                    keep_since=now - WINDOW,
                )  # fmt: skip
                counted.append(until is None)
        finally:
            inventory.close()

    threads = [threading.Thread(target=machine) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counted.count(True) == 25 and len(counted) == 60
    inventory = SqliteInventory(path)
    try:
        assert len(inventory.token_calls("budget", datetime.now(UTC) - WINDOW)) == 25
        assert inventory.token_calls("another budget", T0) == []
    finally:
        inventory.close()


@pytest.mark.peers
def test_team_store_count_is_shared_by_every_machine(openbao):
    from tokenctl.store.openbao.inventory import OpenBaoInventory

    mount = "tokenctl-budgets"
    if f"{mount}/" not in openbao.client().sys.list_mounted_secrets_engines()["data"]:
        openbao.enable_kv(mount)
    prefix = f"team-{uuid.uuid4().hex[:12]}"
    machines = [
        OpenBaoInventory(openbao.address, openbao.root_token, mount, prefix) for _ in range(2)
    ]
    limits = Limits(token_calls_per_day=15)
    counted: list[bool] = []

    def machine(inventory: OpenBaoInventory) -> None:
        for _ in range(12):
            now = datetime.now(UTC)
            until = inventory.count_token_call(
                "exact-online-nl\x1fapp\x1falice", TokenCall(now, 7),
                lambda calls, now=now: next_call_at(calls, now, limits, 7),
                keep_since=now - WINDOW,
            )  # fmt: skip
            counted.append(until is None)

    try:
        threads = [threading.Thread(target=machine, args=(m,)) for m in machines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counted.count(True) == 15 and len(counted) == 24
        since = datetime.now(UTC) - WINDOW
        seen = machines[1].token_calls("exact-online-nl\x1fapp\x1falice", since)
        assert len(seen) == 15  # the other machine sees every call
        assert {call.token for call in seen} == {7}
        # Calls older than the window are forgotten by the next count.
        later = datetime.now(UTC) + WINDOW + timedelta(seconds=1)
        assert machines[0].count_token_call(
            "exact-online-nl\x1fapp\x1falice", TokenCall(later, 7),
            lambda calls: next_call_at(calls, later, limits, 7), keep_since=later - WINDOW,
        ) is None  # fmt: skip
        assert len(machines[1].token_calls("exact-online-nl\x1fapp\x1falice", since)) == 1
    finally:
        for inventory in machines:
            inventory.close()


def test_exact_budget_defers_refreshes_serves_the_valid_token_and_is_shown(tmp_path):
    with serving(ExactDouble(CLIENT_ID, CLIENT_SECRET, "https://auth.example.test/cb")) as exact:
        cli = Cli(home=tmp_path / "home", clock=ShiftedClock(exact))  # type: ignore[arg-type]
        setup_home(cli, tmp_path, exact.base_url, "paste", exact.redirect_uri)
        # Earlier today this app and user made 197 token calls (another integration),
        # as both Exact and tokenctl's inventory know.
        now = datetime.now(UTC)
        earlier = [now - timedelta(hours=20) + timedelta(minutes=6 * i) for i in range(197)]
        budget = f"{DEFINITION}\x1f{CLIENT_ID}\x1falice"
        inventory = SqliteInventory(tmp_path / "home" / "inventory.sqlite3")
        try:
            for moment in earlier:
                inventory.count_token_call(
                    budget, TokenCall(moment, None), lambda _c: None, keep_since=T0
                )
        finally:
            inventory.close()
        for moment in earlier:
            exact.token_calls[(CLIENT_ID, "alice", int(moment.timestamp() // 86400))] += 1

        added = paste_login(cli, "add", "acme-exact", "--definition", DEFINITION)  # call 198
        assert added.exit_code == 0, added.stderr
        for _ in range(2):  # calls 199 and 200, each in Exact's last 30 s
            exact.clock_offset += 580
            renewed = cli("renew", "acme-exact")
            assert renewed.exit_code == 0, renewed.stderr

        exact.clock_offset += 580
        calls = len(exact.token_answers)
        refused = cli("renew", "acme-exact")
        assert refused.exit_code == 1, refused.stderr
        assert (
            "allows 200 token calls a day for this app and alice, and one per 9m30s for each "
            "token" in refused.stderr
        )
        assert "it is possible from" in refused.stderr
        assert len(exact.token_answers) == calls  # Exact was not asked: its limit holds

        # `token`: the access token still has ~20 s; it is served, with a warning.
        served = cli("token", "acme-exact")
        assert served.exit_code == 0, served.stderr
        assert served.stdout.strip() == exact.grants()[-1].access_token
        assert "serving the current access token" in served.stderr

        bulk = cli("renew", "--all", "--json")
        assert bulk.exit_code == 0, bulk.stderr  # deferred is no failure
        (item,) = bulk.json()["renewals"]
        assert item["outcome"] == "deferred"
        assert "possible from" in item["detail"]

        # A minute later the access token has expired and the budget is still spent: the
        # token is unusable until then, which `renew --all` and `token` say (exit 1).
        exact.clock_offset += 60
        stale = cli("renew", "--all", "--json")
        assert stale.exit_code == 1, stale.stderr
        (item,) = stale.json()["renewals"]
        assert item["outcome"] == "deferred" and "unusable until then" in item["detail"]
        expired = cli("token", "acme-exact")
        assert expired.exit_code == 1 and "it is possible from" in expired.stderr
        assert len(exact.token_answers) == calls  # still nothing sent to Exact

        shown = cli("show", "acme-exact", "--json").json()["token"]["token_calls"]
        assert shown["used"] == 200 and shown["remaining"] == 0
        assert shown["limit_per_day"] == 200 and shown["min_interval"] == "9m30s"
        first = earlier[0] + WINDOW
        assert shown["next_call_at"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")
        text = cli("show", "acme-exact").stdout
        assert "200 of 200 in the last 24 h for this app and account" in text
        doctor = cli("doctor").stdout + cli.last_stderr
        assert "exact-online-nl (alice): 200 of 200 token calls in the last 24 h" in doctor

        # Exact never answered "too many": tokenctl stayed within its 200, counted in any
        # 24 hours (stricter than Exact's day, whose bounds are not documented).
        assert not [answer for answer in exact.token_answers if answer[1] == 429]
        assert sum(exact.token_calls.values()) == 200

        # Once the oldest call leaves the 24 hours, the refresh goes through again.
        exact.clock_offset = (first - now).total_seconds() + 1
        later = cli("renew", "acme-exact")
        assert later.exit_code == 0, later.stderr
        assert exact.token_answers[-1][0] == "refresh_token"
