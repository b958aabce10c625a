"""Shared pytest configuration for the tokenctl test suite.

Fixtures for real peers live in ``tests/peers/fixtures.py`` and are loaded as a plugin.
"""

pytest_plugins = ["tests.peers.fixtures"]


import pytest  # noqa: E402

from tests.fakes import Cli  # noqa: E402


@pytest.fixture
def cli(tmp_path):  # type: ignore[no-untyped-def]
    """The tokenctl CLI in-process, with a private home, a fake keyring and a fixed clock."""
    return Cli(home=tmp_path / "home")
