"""Pytest fixtures that run real peers for the test suite.

* ``secret_service`` (session): one private, unlocked gnome-keyring Secret Service.
* ``real_keyring`` (function): points this process (``os.environ`` and python
  ``keyring``) at that Secret Service, with an empty keyring before and after the test.

When the binaries are missing the fixtures skip, unless ``TOKENCTL_REQUIRE_PEERS=1``
(as set by ``tests/run``), in which case they fail. Tests that use them get the
``peers`` marker automatically, so ``-m "not peers"`` deselects them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .secret_service import SecretService, SecretServiceUnavailable, start_secret_service

if TYPE_CHECKING:
    from .oidc_server import OidcServer

REQUIRE_PEERS_ENV = "TOKENCTL_REQUIRE_PEERS"
_PEER_FIXTURES = frozenset({"secret_service", "real_keyring"})


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
    """Mark every test that uses a real peer with ``peers``."""
    for item in items:
        if _PEER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.peers)


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
