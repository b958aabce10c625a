"""Pytest fixtures that run real peers for the test suite.

* ``secret_service`` (session): one private, unlocked gnome-keyring Secret Service.
* ``real_keyring`` (function): points this process (``os.environ`` and python
  ``keyring``) at that Secret Service, with an empty keyring before and after the test.
* ``openbao`` (session): one OpenBao dev server (``tests/peers/openbao.py``), started
  when a test first asks for it.
* ``openbao_kv`` (function): the name of a fresh KV v2 mount on that server, removed
  after the test.
* ``raft_cluster`` (function): a fresh 3-node OpenBao Raft cluster for fault tests
  (~6 s to start); its tests also get the ``slow`` marker.

When the binaries are missing the fixtures skip, unless ``TOKENCTL_REQUIRE_PEERS=1``
(as set by ``tests/run``), in which case they fail. Tests that use them get the
``peers`` marker automatically, so ``-m "not peers"`` deselects them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from .openbao import (
    OpenBao,
    OpenBaoUnavailable,
    RaftCluster,
    start_dev_server,
    start_raft_cluster,
)
from .secret_service import SecretService, SecretServiceUnavailable, start_secret_service

if TYPE_CHECKING:
    from .oidc_server import OidcServer

REQUIRE_PEERS_ENV = "TOKENCTL_REQUIRE_PEERS"
_PEER_FIXTURES = frozenset(
    {"secret_service", "real_keyring", "openbao", "openbao_kv", "raft_cluster"}
)
_SLOW_FIXTURES = frozenset({"raft_cluster"})
_kv_mounts = itertools.count(1)


def peers_required() -> bool:
    """Return whether missing peers are an error rather than a reason to skip."""
    return os.environ.get(REQUIRE_PEERS_ENV) == "1"


def start_oidc_peer(config: Mapping[str, Any], tmp_dir: Path) -> OidcServer:
    """Start oidc-provider with ``config``; skip (or fail, when peers are required) if it cannot."""
    from .oidc_server import OidcPeerError, start_oidc_provider

    try:
        return start_oidc_provider(config, tmp_dir)
    except OidcPeerError as error:
        if peers_required():
            pytest.fail(f"{REQUIRE_PEERS_ENV}=1 but the OIDC peer failed: {error}")
        pytest.skip(f"OIDC peer unavailable: {error}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a real peer with ``peers`` (and a Raft cluster: ``slow``)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if _PEER_FIXTURES.intersection(fixtures):
            item.add_marker(pytest.mark.peers)
        if _SLOW_FIXTURES.intersection(fixtures):
            item.add_marker(pytest.mark.slow)


def _bao_unavailable(exc: OpenBaoUnavailable) -> NoReturn:
    """Fail (peers required) or skip because the ``bao`` binary is missing."""
    if peers_required():
        pytest.fail(f"{REQUIRE_PEERS_ENV}=1 but no OpenBao: {exc}", pytrace=False)
    pytest.skip(f"OpenBao unavailable: {exc}; {REQUIRE_PEERS_ENV}=1 would fail")


@pytest.fixture(scope="session")
def secret_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecretService]:
    """Run one real gnome-keyring Secret Service for the whole test session."""
    try:
        service = start_secret_service(tmp_path_factory.mktemp("secret-service"))
    except SecretServiceUnavailable as exc:
        if peers_required():
            pytest.fail(f"{REQUIRE_PEERS_ENV}=1 but no Secret Service: {exc}", pytrace=False)
        pytest.skip(f"real Secret Service unavailable: {exc}; {REQUIRE_PEERS_ENV}=1 would fail")
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
def real_keyring(
    secret_service: SecretService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretService]:
    """Point ``os.environ`` and python ``keyring`` at the session's Secret Service.

    The keyring is emptied before and after the test. ``keyring.core`` caches the
    backend it chose; the cache is reset so the next ``keyring`` call selects the
    pinned SecretService backend from the patched environment, and restored afterwards.
    """
    import keyring.core

    if not secret_service.is_running():
        pytest.fail("the session's Secret Service is no longer running", pytrace=False)
    for name, value in secret_service.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    secret_service.clear()
    yield secret_service
    if secret_service.is_running():
        secret_service.clear()


@pytest.fixture(scope="session")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    """Run one real OpenBao dev server for the whole session (when a test first asks).

    Tests share it: give each its own KV mount (``openbao_kv``) or path, and unseal what
    you seal (``openbao.sealed()`` does).
    """
    try:
        server = start_dev_server(tmp_path_factory.mktemp("openbao"))
    except OpenBaoUnavailable as exc:
        _bao_unavailable(exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openbao_kv(openbao: OpenBao) -> Iterator[str]:
    """The name of a fresh KV v2 mount on the session's OpenBao, unmounted after the test."""
    if not openbao.is_running():
        pytest.fail(f"the session's OpenBao is no longer running: {openbao.node.log_tail()}")
    if openbao.is_sealed():
        pytest.fail("the session's OpenBao was left sealed by an earlier test", pytrace=False)
    mount = f"kv-test-{next(_kv_mounts)}"
    openbao.enable_kv(mount)
    yield mount
    if openbao.is_running() and not openbao.is_sealed():
        openbao.disable_mount(mount)


@pytest.fixture
def raft_cluster(tmp_path: Path) -> Iterator[RaftCluster]:
    """A fresh 3-node OpenBao cluster on Raft storage, every node a voter (fault tests)."""
    try:
        cluster = start_raft_cluster(tmp_path / "raft")
    except OpenBaoUnavailable as exc:
        _bao_unavailable(exc)
    try:
        yield cluster
    finally:
        cluster.stop()
