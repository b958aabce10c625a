"""Tests of the real OpenBao harness (tests/peers/openbao.py) itself.

They show that what the team-store tests rely on is the server's behaviour, not the
harness's: KV v2 check-and-set, policies, AppRole and JWT logins and sealing are enforced
by ``bao``, and a Raft cluster survives SIGKILL of its leader.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import hvac
import hvac.exceptions
import pytest

from tests.peers.openbao import (
    BaoRequestError,
    OpenBao,
    RaftCluster,
    api_request,
    free_ports,
)


def read_kv(client: hvac.Client, mount: str, path: str) -> dict[str, object]:
    """The latest version's data at *path* of the KV v2 mount *mount*."""
    answer = client.secrets.kv.v2.read_secret_version(
        path, mount_point=mount, raise_on_deleted_version=True
    )
    return dict(answer["data"]["data"])


def read_only_policy(mount: str) -> str:
    return f'path "{mount}/data/*" {{ capabilities = ["read"] }}'


def test_dev_server_env_cli_and_private_home(openbao: OpenBao, openbao_kv: str) -> None:
    env = openbao.env()
    assert env["BAO_ADDR"] == env["VAULT_ADDR"] == openbao.address
    assert env["BAO_TOKEN"] == env["VAULT_TOKEN"] == openbao.root_token
    assert openbao.address.startswith("http://127.0.0.1:")

    openbao.client().secrets.kv.v2.create_or_update_secret(
        "records/1", {"name": "acme"}, mount_point=openbao_kv
    )
    # the real CLI, pointed at the server only through env(), reads what hvac wrote
    result = openbao.cli("kv", "get", "-format=json", f"{openbao_kv}/records/1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["data"]["data"] == {"name": "acme"}
    # -dev-no-store-token and the private HOME: no token helper file anywhere we control
    assert list((openbao.base_dir / "home").iterdir()) == []


def test_kv_v2_put_get_and_cas0_refuses_an_overwrite(openbao: OpenBao, openbao_kv: str) -> None:
    kv = openbao.client().secrets.kv.v2
    written = kv.create_or_update_secret(
        "names/acme", {"number": "1"}, cas=0, mount_point=openbao_kv
    )
    assert written["data"]["version"] == 1
    assert read_kv(openbao.client(), openbao_kv, "names/acme") == {"number": "1"}

    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
        kv.create_or_update_secret("names/acme", {"number": "2"}, cas=0, mount_point=openbao_kv)
    assert read_kv(openbao.client(), openbao_kv, "names/acme") == {"number": "1"}

    # check-and-set on the version read succeeds once, then that version is stale
    kv.create_or_update_secret("names/acme", {"number": "3"}, cas=1, mount_point=openbao_kv)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
        kv.create_or_update_secret("names/acme", {"number": "4"}, cas=1, mount_point=openbao_kv)
    assert read_kv(openbao.client(), openbao_kv, "names/acme") == {"number": "3"}


def test_a_read_only_policy_is_enforced_by_the_server(openbao: OpenBao, openbao_kv: str) -> None:
    openbao.client().secrets.kv.v2.create_or_update_secret(
        "records/1", {"name": "acme"}, mount_point=openbao_kv
    )
    openbao.write_policy(f"{openbao_kv}-read", read_only_policy(openbao_kv))
    reader = openbao.client(openbao.create_token([f"{openbao_kv}-read"]))

    assert read_kv(reader, openbao_kv, "records/1") == {"name": "acme"}
    with pytest.raises(hvac.exceptions.Forbidden, match="permission denied"):
        reader.secrets.kv.v2.create_or_update_secret(
            "records/2", {"name": "evil"}, mount_point=openbao_kv
        )
    with pytest.raises(BaoRequestError) as refused:
        api_request(
            openbao.address,
            "POST",
            f"{openbao_kv}/data/records/2",
            token=reader.token,
            body={"data": {"name": "evil"}},
        )
    assert refused.value.status == 403
    with pytest.raises(hvac.exceptions.InvalidPath):  # nothing was written
        read_kv(openbao.client(), openbao_kv, "records/2")


def test_approle_login_and_a_wrong_secret_id_is_refused(openbao: OpenBao, openbao_kv: str) -> None:
    openbao.write_policy(f"{openbao_kv}-read", read_only_policy(openbao_kv))
    role_id, secret_id = openbao.approle_role("support-cron", [f"{openbao_kv}-read"])

    client = hvac.Client(url=openbao.address)
    login = client.auth.approle.login(role_id, secret_id)
    assert f"{openbao_kv}-read" in login["auth"]["policies"]
    assert client.auth.token.lookup_self()["data"]["meta"]["role_name"] == "support-cron"

    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid role or secret ID"):
        hvac.Client(url=openbao.address).auth.approle.login(role_id, "not-the-secret-id")
    another = openbao.approle_secret_id("support-cron")
    assert another != secret_id
    assert hvac.Client(url=openbao.address).auth.approle.login(role_id, another)["auth"][
        "client_token"
    ]


def test_jwt_login_and_a_wrong_audience_is_refused(openbao: OpenBao, openbao_kv: str) -> None:
    openbao.write_policy(f"{openbao_kv}-read", read_only_policy(openbao_kv))
    openbao.jwt_role(
        "ci-check", [f"{openbao_kv}-read"], audience="tokenctl", subject="repo:acme/infra"
    )

    good = openbao.sign_jwt({"aud": "tokenctl", "sub": "repo:acme/infra"})
    client = hvac.Client(url=openbao.address)
    login = client.auth.jwt.jwt_login("ci-check", good)
    assert f"{openbao_kv}-read" in login["auth"]["policies"]
    assert login["auth"]["metadata"] == {"role": "ci-check"}

    refusals: dict[str, dict[str, Any]] = {
        "invalid audience": {"aud": "someone-else", "sub": "repo:acme/infra"},
        "invalid subject": {"aud": "tokenctl", "sub": "repo:evil/fork"},
        "issuer": {"aud": "tokenctl", "sub": "repo:acme/infra", "iss": "https://evil.test"},
        "expired": {"aud": "tokenctl", "sub": "repo:acme/infra", "exp": 1_000_000},
    }
    for reason, claims in refusals.items():
        with pytest.raises(hvac.exceptions.InvalidRequest, match=reason):
            hvac.Client(url=openbao.address).auth.jwt.jwt_login(
                "ci-check", openbao.sign_jwt(claims)
            )


def test_a_sealed_server_answers_503_until_unsealed(openbao: OpenBao, openbao_kv: str) -> None:
    client = openbao.client()
    client.secrets.kv.v2.create_or_update_secret("records/1", {"a": "b"}, mount_point=openbao_kv)

    with openbao.sealed():
        assert openbao.is_sealed()
        with pytest.raises(hvac.exceptions.VaultDown, match="sealed"):
            read_kv(client, openbao_kv, "records/1")
        with pytest.raises(BaoRequestError) as refused:
            api_request(
                openbao.address, "GET", f"{openbao_kv}/data/records/1", token=openbao.root_token
            )
        assert (refused.value.status, refused.value.errors) == (503, ["Vault is sealed"])

    assert not openbao.is_sealed()
    assert read_kv(client, openbao_kv, "records/1") == {"a": "b"}


def test_free_ports_are_distinct_and_consecutive_on_request() -> None:
    ports = free_ports(6)
    assert len(set(ports)) == 6
    first, second = free_ports(2, consecutive=True)
    assert second == first + 1


def test_raft_cluster_survives_sigkill_of_its_leader(
    raft_cluster: RaftCluster, record_property: Callable[[str, object], None]
) -> None:
    cluster = raft_cluster
    record_property("raft_startup_seconds", round(cluster.startup_seconds, 2))
    servers = cluster.raft_servers()
    assert len(servers) == 3 and all(server["voter"] for server in servers), servers

    cluster.enable_kv("team")
    old_leader = cluster.leader()
    leader = cluster.node_client(old_leader)
    leader.secrets.kv.v2.create_or_update_secret("records/1", {"n": "1"}, mount_point="team")

    killed = cluster.kill_leader()
    record_property("raft_failover_seconds", round(cluster.failover_seconds, 2))
    assert killed == old_leader
    assert not cluster.nodes[killed].is_running()
    new_leader = cluster.leader()
    assert new_leader != old_leader
    standby = ({0, 1, 2} - {old_leader, new_leader}).pop()

    at_leader = cluster.node_client(new_leader)
    at_standby = cluster.node_client(standby)
    assert read_kv(at_leader, "team", "records/1") == {"n": "1"}
    assert read_kv(at_standby, "team", "records/1") == {"n": "1"}

    # a write sent to a standby is forwarded to the new leader
    at_standby.secrets.kv.v2.create_or_update_secret(
        "records/2", {"n": "2"}, cas=0, mount_point="team"
    )
    assert read_kv(at_leader, "team", "records/2") == {"n": "2"}
    with pytest.raises(hvac.exceptions.InvalidRequest, match="check-and-set"):
        at_standby.secrets.kv.v2.create_or_update_secret(
            "records/2", {"n": "x"}, cas=0, mount_point="team"
        )

    # the killed node comes back on its data and catches up
    cluster.restart(killed)
    assert cluster.nodes[killed].is_running()
    back = cluster.node_client(killed)
    assert read_kv(back, "team", "records/2") == {"n": "2"}
