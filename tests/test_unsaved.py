"""A token set the store could not take: kept sealed, bound to the set it replaces."""

from __future__ import annotations

import io
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from tests.fakes import START, MemoryKeyring
from tokenctl.context import AppContext
from tokenctl.errors import SecretStoreError
from tokenctl.iostreams import IOStreams
from tokenctl.models import Actor, Token, TokenSecrets
from tokenctl.services.unsaved import (
    UNSAVED_KEY_REF,
    forget_unsaved,
    keep_unsaved,
    unsaved_file,
    unsaved_secrets,
)


def _context(home: Path, keyring: MemoryKeyring) -> AppContext:
    streams = IOStreams(
        stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO(),
        stdin_tty=False, stdout_tty=False, stderr_tty=False, color=False, width=100,
    )  # fmt: skip
    return AppContext(
        io=streams,
        environ={"TOKENCTL_HOME": str(home)},
        keyring_factory=lambda paths: keyring,
        user_name=lambda: "tester",
        host_name=lambda: "testhost",
    )


@pytest.fixture
def kept(tmp_path):
    keyring = MemoryKeyring()
    ctx = _context(tmp_path / "home", keyring)
    token = ctx.inventory.add(
        Token(
            number=0, name="acme", authentication_code="C-1", definition="api-key",
            secret_set_at=START,
        ),
        Actor(user="tester", unit="testhost"),
        START,
        secrets=TokenSecrets(access_token="AT-stored", refresh_token="RT-stored"),
    )  # fmt: skip
    path = keep_unsaved(
        ctx, token, TokenSecrets(access_token="AT-new", refresh_token="RT-new"), START
    )
    yield ctx, keyring, token, path
    ctx.close()


def test_a_kept_set_is_sealed_and_opens_for_the_record_it_replaces(kept):
    ctx, keyring, token, path = kept
    assert path == unsaved_file(ctx, token)
    assert ctx.inventory.inventory_id in path.name  # one file per inventory and token
    text = path.read_text()
    assert "RT-new" not in text and "AT-new" not in text
    assert path.stat().st_mode & 0o077 == 0
    assert keyring.get_text(UNSAVED_KEY_REF)
    found = unsaved_secrets(ctx, token)
    assert found is not None and found.refresh_token == "RT-new"
    forget_unsaved(ctx, token)
    assert not path.exists() and unsaved_secrets(ctx, token) is None


def test_a_kept_set_is_outdated_once_the_record_holds_another_set(kept):
    ctx, _keyring, token, path = kept
    stored_since = replace(token, secret_set_at=START + timedelta(minutes=5))
    assert unsaved_secrets(ctx, stored_since) is None
    assert not path.exists()  # removed: it would override the newer set


def test_a_kept_set_that_does_not_open_is_an_error_not_a_silent_fallback(kept):
    ctx, keyring, token, path = kept
    keyring.delete(UNSAVED_KEY_REF)
    with pytest.raises(SecretStoreError) as raised:
        unsaved_secrets(ctx, token)
    assert str(path) in raised.value.message and path.exists()


def test_an_entry_that_is_not_a_key_is_never_overwritten(tmp_path):
    keyring = MemoryKeyring()
    keyring.set_text(UNSAVED_KEY_REF, "not a key")
    ctx = _context(tmp_path / "home", keyring)
    try:
        token = ctx.inventory.add(
            Token(number=0, name="acme", authentication_code="C-1", definition="api-key"),
            Actor(user="tester", unit="testhost"),
            START,
        )
        with pytest.raises(SecretStoreError, match="is not a key tokenctl made"):
            keep_unsaved(ctx, token, TokenSecrets(refresh_token="RT-new"), START)
        assert keyring.get_text(UNSAVED_KEY_REF) == "not a key"
        assert not unsaved_file(ctx, token).exists()
    finally:
        ctx.close()


def test_doctor_names_each_kept_set_and_what_to_run_until_it_is_stored(kept):
    from tokenctl.errors import ExitCode
    from tokenctl.services.doctor import run_doctor

    ctx, _keyring, token, path = kept
    report = run_doctor(ctx)
    [check] = [check for check in report.checks if check.name == "unsaved"]
    assert not check.ok and report.exit_code == ExitCode.ERROR
    assert "1 token set the store could not take is kept" in check.detail
    assert f"acme (issued {START.isoformat()})" in check.detail
    assert "tokenctl renew NAME" in check.detail
    assert "RT-new" not in check.detail and "AT-new" not in check.detail
    # A file that is no kept set's document is named too, never skipped.
    (path.parent / "stray.json").write_text("not json")
    [check] = [c for c in run_doctor(ctx).checks if c.name == "unsaved"]
    assert "2 token sets" in check.detail and "stray.json" in check.detail
    (path.parent / "stray.json").unlink()
    forget_unsaved(ctx, token)  # what the next refresh does once it stored the set
    [check] = [c for c in run_doctor(ctx).checks if c.name == "unsaved"]
    assert check.ok and check.detail == "no token set waiting to be stored"


def test_doctor_says_so_when_the_folder_of_kept_sets_cannot_be_read(kept, monkeypatch):
    import os

    from tokenctl.services.doctor import run_doctor

    ctx, _keyring, _token, path = kept
    real = os.scandir

    def refused(folder):  # as a folder of mode 0000 answers (root reads any, so faked)
        if Path(folder) == path.parent:
            raise PermissionError(13, "Permission denied", str(folder))
        return real(folder)

    monkeypatch.setattr(os, "scandir", refused)
    [check] = [c for c in run_doctor(ctx).checks if c.name == "unsaved"]
    assert not check.ok
    assert check.detail == f"cannot read {path.parent}: Permission denied"
