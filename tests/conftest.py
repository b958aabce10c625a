"""Shared pytest configuration for the tokenctl test suite.

Fixtures for real peers live in ``tests/peers/fixtures.py`` and are loaded as a plugin.
"""

import os

pytest_plugins = ["tests.peers.fixtures"]


import pytest  # noqa: E402

from tests.fakes import Cli  # noqa: E402


@pytest.fixture
def cli(tmp_path):  # type: ignore[no-untyped-def]
    """The tokenctl CLI in-process, with a private home, a fake keyring and a fixed clock."""
    return Cli(home=tmp_path / "home")


@pytest.fixture(scope="session")
def oidc(tmp_path_factory):  # type: ignore[no-untyped-def]
    """One real oidc-provider for the session (see tests/peers/oidc)."""
    from tests.oauth_support import PROVIDER_CONFIG
    from tests.peers.fixtures import start_oidc_peer

    server = start_oidc_peer(PROVIDER_CONFIG, tmp_path_factory.mktemp("oidc"))
    yield server
    server.stop()


@pytest.fixture
def ocli(tmp_path):  # type: ignore[no-untyped-def]
    """The CLI in-process with the wall clock (for tokens of the real provider)."""
    from tests.oauth_support import RealClock

    return Cli(home=tmp_path / "home", clock=RealClock())  # type: ignore[arg-type]


CHROMIUM = os.environ.get("TOKENCTL_TEST_CHROMIUM", "/usr/lib/chromium/chromium")


@pytest.fixture
def chromium() -> str:
    """The Chromium binary the driver runs; skips (or fails) when it is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = f"headless Chromium not found at {CHROMIUM} (Debian package: chromium)"
        from tests.peers.fixtures import peers_required

        if peers_required():
            pytest.fail(f"TOKENCTL_REQUIRE_PEERS=1 but {reason}", pytrace=False)
        pytest.skip(f"{reason}; TOKENCTL_REQUIRE_PEERS=1 would fail")
    return CHROMIUM
