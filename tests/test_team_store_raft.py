"""Faults on a real 3-node OpenBao Raft cluster: the leader killed with SIGKILL while
`tokenctl renew --all` renews 200 tokens of the real oidc-provider, which rotates refresh
tokens and revokes a grant whose consumed refresh token comes back.

Every token must end renewed, or unchanged and still usable: afterwards the provider
accepts every stored refresh token. tokenctl points at a standby (as it would at a load
balancer's address); its writes there fail for a few seconds until a new leader is
elected, and the run retries them (src/tokenctl/store/openbao/kv.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.oauth_support import SCOPES, definition_toml
from tests.peers.oidc_server import LOOPBACK_REDIRECT_URI, PUBLIC_CLIENT_ID, OidcServer
from tests.peers.openbao import RaftCluster
from tokenctl.definitions.registry import load_definitions
from tokenctl.models import Actor, Token, TokenSecrets
from tokenctl.oauth.grants import grant_fields, secrets_of
from tokenctl.oauth.provider import grant_from_response
from tokenctl.store.openbao.inventory import OpenBaoInventory

pytestmark = [pytest.mark.peers, pytest.mark.slow]

MOUNT, PREFIX, DEFINITION = "tokenctl", "acme", "acme-books"
TOKENS = 200
#: The leader is killed once the provider has served this many of the run's refreshes.
KILL_AFTER = 50
USER, PASSWORD = "alice", "alice-password"


def _login(provider: OidcServer, metadata: dict[str, Any]) -> dict[str, Any]:
    """One authorization code login with PKCE (a grant of its own); the token response."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": PUBLIC_CLIENT_ID,
            "redirect_uri": LOOPBACK_REDIRECT_URI,
            "scope": " ".join(SCOPES),
            "state": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    final = provider.browser_login(
        f"{metadata['authorization_endpoint']}?{query}", USER, PASSWORD, follow_to_callback=False
    )
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(final).query)["code"][0]
    return _token_call(
        metadata,
        grant_type="authorization_code",
        code=code,
        redirect_uri=LOOPBACK_REDIRECT_URI,
        code_verifier=verifier,
    )


def _token_call(metadata: dict[str, Any], **form: str) -> dict[str, Any]:
    body = urllib.parse.urlencode({"client_id": PUBLIC_CLIENT_ID, **form}).encode()
    request = urllib.request.Request(metadata["token_endpoint"], data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # loopback only
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as error:
        return {"error": json.loads(error.read()).get("error", str(error.code))}
    return answer


def _fill(cluster: RaftCluster, node: int, home: Path, provider: OidcServer) -> dict[str, str]:
    """TOKENS OAuth tokens in the team store, each from a login of its own and stored as
    `tokenctl add` stores a login; their refresh tokens by name."""
    metadata = provider.metadata()
    definition = load_definitions(home / "definitions.toml").require(DEFINITION)
    settings = definition.oauth2
    assert settings is not None
    address = cluster.addresses[node]

    def add(index: int) -> tuple[str, str]:
        now = datetime.now(UTC)
        grant = grant_from_response(_login(provider, metadata), now, settings.scopes, settings)
        token_secrets = secrets_of(grant)
        token = Token(
            number=0,
            name=f"books-{index:03d}",
            authentication_code=f"CODE-{index:03d}",
            definition=DEFINITION,
            attributes={"issuer": provider.issuer, "subject": USER},
            **grant_fields(grant, definition, now, login=True, secrets=token_secrets),
        )
        inventory = OpenBaoInventory(address, cluster.root_token, MOUNT, PREFIX)
        try:
            inventory.add(token, Actor("tester", "raft"), now, secrets=token_secrets)
        finally:
            inventory.close()
        assert token_secrets.refresh_token
        return token.name, token_secrets.refresh_token

    with ThreadPoolExecutor(8) as pool:
        return dict(pool.map(add, range(TOKENS)))


@pytest.mark.timeout(300)  # ~50 s on an idle 2-core machine; twice that under load
def test_renew_all_survives_sigkill_of_the_leader(
    raft_cluster: RaftCluster,
    oidc: OidcServer,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    cluster = raft_cluster
    cluster.enable_kv(MOUNT)
    leader = cluster.leader()
    standby = next(n for n in range(len(cluster.nodes)) if n != leader)
    home = tmp_path / "cron" / "tokenctl"
    home.mkdir(parents=True)
    (home / "definitions.toml").write_text(
        definition_toml(DEFINITION, oidc.issuer, PUBLIC_CLIENT_ID)
    )
    (home / "config.toml").write_text(
        f'unit = "cron"\n\n[store]\nkind = "openbao"\naddress = "{cluster.addresses[standby]}"\n'
        f'mount = "{MOUNT}"\npath = "{PREFIX}"\n'
    )
    home.chmod(0o700)
    started = time.monotonic()
    before = _fill(cluster, leader, home, oidc)
    filled = time.monotonic() - started

    env = {k: v for k, v in os.environ.items() if not k.startswith(("BAO_", "VAULT_", "TOKENCTL_"))}
    env.update(
        HOME=str(tmp_path / "cron"),
        TOKENCTL_HOME=str(home),
        BAO_TOKEN=cluster.root_token,
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    served = oidc.stats().get("refresh_served", 0)
    run_at = time.monotonic()
    run = subprocess.Popen(
        [sys.executable, "-m", "tokenctl", "renew", "--all", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        while oidc.stats().get("refresh_served", 0) - served < KILL_AFTER:
            assert run.poll() is None, run.communicate()
            time.sleep(0.02)
        killed = cluster.kill_leader()
        assert run.poll() is None, "the run ended before the leader was killed"
        stdout, stderr = run.communicate(timeout=120)
        renewed_at = time.monotonic()
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert killed == leader and killed != standby

    # Exit 0: every token was renewed, the writes that failed during the election retried.
    assert run.returncode == 0, stderr[-3000:]
    outcomes = {item["name"]: item["outcome"] for item in json.loads(stdout)["renewals"]}
    assert outcomes == dict.fromkeys(before, "refreshed")

    # What the store holds now, read on a surviving node.
    survivor = OpenBaoInventory(cluster.addresses[standby], cluster.root_token, MOUNT, PREFIX)
    try:
        tokens = survivor.tokens()
        stored = {token.name: survivor.secrets(token.number) for token in tokens}
        history = {token.name: survivor.history(token.number) for token in tokens[:3]}
    finally:
        survivor.close()
    assert sorted(stored) == sorted(before)
    assert all(isinstance(found, TokenSecrets) and found.refresh_token for found in stored.values())
    renewed = [name for name, found in stored.items() if found.refresh_token != before[name]]
    assert len(renewed) == TOKENS  # rotated: each stored refresh token is the new one
    assert all(events[0].event == "renewed" for events in history.values())

    # The provider still accepts every stored refresh token: no grant was lost.
    metadata = oidc.metadata()
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda found: _token_call(
                    metadata, grant_type="refresh_token", refresh_token=found.refresh_token
                ),
                stored.values(),
            )
        )
    refused = [answer.get("error") for answer in answers if "access_token" not in answer]
    assert refused == []
    for name, seconds in (
        ("raft_fill_seconds", filled),
        ("raft_failover_seconds", cluster.failover_seconds),
        ("raft_renew_all_seconds", renewed_at - run_at),
    ):
        record_property(name, round(seconds, 1))


def test_a_standby_answers_with_what_was_just_written(raft_cluster: RaftCluster) -> None:
    """A standby serves reads from its own copy, which lags the leader: without the index
    of our last write (X-Vault-Index), a read right after a write misses it."""
    from tokenctl.store.openbao.kv import CasConflict, KvStore

    cluster = raft_cluster
    cluster.enable_kv(MOUNT)
    standbys = [n for n in range(len(cluster.nodes)) if n != cluster.leader()]
    laptop, cron = (
        KvStore(cluster.addresses[node], cluster.root_token, MOUNT) for node in standbys
    )
    try:
        version = laptop.write("counter", {"next": 0}, cas=0)
        for value in range(1, 41):  # each read right after our own write sees it
            version = laptop.write("counter", {"next": value}, cas=version)
            entry = laptop.read("counter")
            assert entry is not None and (entry.version, entry.data) == (version, {"next": value})
        for index in range(10):  # another machine's write, learnt from a refused one
            laptop.write(f"names/n{index}", {"number": index}, cas=0)
            with pytest.raises(CasConflict):
                cron.write(f"names/n{index}", {"number": 99}, cas=0)
            found = cron.read(f"names/n{index}")
            assert found is not None and found.data == {"number": index}
    finally:
        laptop.close()
        cron.close()
