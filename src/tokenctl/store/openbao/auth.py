"""Logging in to the team store, and keeping the store token fresh while a command runs.

Three logins (``[store] auth`` in config.toml):

- ``token``: the store token given (``BAO_TOKEN``, ``VAULT_TOKEN``, ``~/.vault-token``).
- ``approle``: the role id (``store.role``) and a secret id (``TOKENCTL_APPROLE_SECRET_ID``,
  or the file ``TOKENCTL_APPROLE_SECRET_ID_FILE`` names) at ``auth/<auth_mount>/login``.
- ``jwt``: the job's identity token (``TOKENCTL_STORE_JWT``, the file
  ``TOKENCTL_STORE_JWT_FILE`` names, or GitHub Actions' OIDC token fetched with
  ``ACTIONS_ID_TOKEN_REQUEST_URL`` and ``ACTIONS_ID_TOKEN_REQUEST_TOKEN``) for the role
  ``store.role`` at ``auth/<auth_mount>/login``.

The store token that results lives in memory for the command only. :class:`TokenKeeper`
logs in on the first call to the server, renews the token (``auth/token/renew-self``)
when two thirds of its time are over, and logs in again (approle, jwt) when it cannot be
renewed any further. No secret (secret id, identity token, store token) is ever put in a
message, a ``repr`` or the command line.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenctl.errors import SecretStoreError, TokenctlError
from tokenctl.store.connection import first_set

if TYPE_CHECKING:
    import hvac

    from tokenctl.oauth.provider import Transport

#: The secret id of the AppRole login, and the file that holds it instead.
SECRET_ID_VARIABLE = "TOKENCTL_APPROLE_SECRET_ID"  # noqa: S105 - a variable's name
SECRET_ID_FILE_VARIABLE = "TOKENCTL_APPROLE_SECRET_ID_FILE"  # noqa: S105 - a variable's name
#: The job's identity token of the JWT login, and the file that holds it instead.
JWT_VARIABLE = "TOKENCTL_STORE_JWT"
JWT_FILE_VARIABLE = "TOKENCTL_STORE_JWT_FILE"
#: What a GitHub Actions job with ``permissions: id-token: write`` is given.
GITHUB_URL_VARIABLE = "ACTIONS_ID_TOKEN_REQUEST_URL"
GITHUB_TOKEN_VARIABLE = "ACTIONS_ID_TOKEN_REQUEST_TOKEN"  # noqa: S105 - a variable's name
#: The longest wait for GitHub's answer with the identity token.
GITHUB_DEADLINE = 30.0
#: A given store token's time left is asked for once the command has run this long
#: (seconds): a short command never pays for the look-up, a long run renews in time.
LOOK_UP_AFTER = 1.0
#: The token is renewed (or logged in again) when less than this share of its time is left.
RENEW_WHEN_LEFT = 1 / 3


@dataclass(frozen=True)
class TokenLogin:
    """A store token given as it is (no login)."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class AppRoleLogin:
    """The AppRole login: role id and secret id at ``auth/<mount>/login``."""

    role_id: str
    secret_id: str = field(repr=False)
    mount: str = "approle"
    #: Where the secret id came from, for messages (a variable's name, or stdin).
    source: str = SECRET_ID_VARIABLE


@dataclass(frozen=True)
class JwtLogin:
    """The JWT login: the job's identity token for ``role`` at ``auth/<mount>/login``."""

    role: str
    #: Gives the identity token when the login is made (a fresh one from GitHub each time).
    identity_token: Callable[[], str] = field(repr=False)
    mount: str = "jwt"
    #: Where the identity token comes from, for messages.
    source: str = JWT_VARIABLE


StoreLogin = TokenLogin | AppRoleLogin | JwtLogin


def _read_secret_file(variable: str, file_name: str, what: str) -> str:
    """The secret in the file ``variable`` names (its surrounding white space dropped)."""
    try:
        value = Path(file_name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise SecretStoreError(
            f"the {what} file {file_name!r} ({variable}) cannot be read: {reason}",
            hint=f"point {variable} at a readable file that holds the {what}",
        ) from None
    if not value:
        raise SecretStoreError(
            f"the {what} file {file_name!r} ({variable}) is empty",
            hint=f"write the {what} into it",
        )
    return value


def approle_login(
    role_id: str, mount: str, environ: Mapping[str, str], *, secret_id: str | None = None
) -> AppRoleLogin:
    """The AppRole login of ``role_id`` at ``auth/<mount>``; refused without a secret id.

    The secret id given (read from stdin), else ``TOKENCTL_APPROLE_SECRET_ID``, else the
    file ``TOKENCTL_APPROLE_SECRET_ID_FILE`` names.
    """
    if secret_id is not None:
        return AppRoleLogin(role_id, secret_id, mount, source="stdin")
    found = first_set(environ, SECRET_ID_VARIABLE)
    if found is not None:
        return AppRoleLogin(role_id, found, mount, source=SECRET_ID_VARIABLE)
    file_name = first_set(environ, SECRET_ID_FILE_VARIABLE)
    if file_name is not None:
        found = _read_secret_file(SECRET_ID_FILE_VARIABLE, file_name, "AppRole secret id")
        return AppRoleLogin(role_id, found, mount, source=SECRET_ID_FILE_VARIABLE)
    raise SecretStoreError(
        "no secret id for the AppRole login to the team store: "
        f"{SECRET_ID_VARIABLE} and {SECRET_ID_FILE_VARIABLE} are not set",
        hint=f"set {SECRET_ID_VARIABLE} to the role's secret id, or {SECRET_ID_FILE_VARIABLE} "
        "to a file that holds it",
    )


def jwt_login(
    role: str,
    mount: str,
    environ: Mapping[str, str],
    *,
    audience: str | None = None,
    transport: Transport | None = None,
) -> JwtLogin:
    """The JWT login of ``role`` at ``auth/<mount>``; refused without an identity token.

    The job's identity token from ``TOKENCTL_STORE_JWT``, else the file
    ``TOKENCTL_STORE_JWT_FILE`` names (read at each login), else GitHub Actions' (asked for
    ``audience``, or without one for GitHub's default audience).
    """
    given = first_set(environ, JWT_VARIABLE)
    if given is not None:
        return JwtLogin(role, lambda: given, mount, source=JWT_VARIABLE)
    file_name = first_set(environ, JWT_FILE_VARIABLE)
    if file_name is not None:
        # Read at each login: a file kept fresh by the platform (Kubernetes) may change.
        return JwtLogin(
            role,
            lambda: _read_secret_file(JWT_FILE_VARIABLE, file_name, "identity token"),
            mount,
            source=JWT_FILE_VARIABLE,
        )
    url = first_set(environ, GITHUB_URL_VARIABLE)
    request_token = first_set(environ, GITHUB_TOKEN_VARIABLE)
    if url is not None and request_token is not None:
        return JwtLogin(
            role,
            lambda: github_identity_token(url, request_token, audience, transport),
            mount,
            source="GitHub Actions",
        )
    raise SecretStoreError(
        "no identity token for the JWT login to the team store: "
        f"{JWT_VARIABLE}, {JWT_FILE_VARIABLE} and GitHub Actions' {GITHUB_URL_VARIABLE} are "
        "not set",
        hint=f"set {JWT_VARIABLE} to the job's identity token (GitLab CI: id_tokens), "
        f"{JWT_FILE_VARIABLE} to a file that holds it, or give the GitHub Actions job "
        "`permissions: id-token: write`",
    )


def github_identity_token(
    url: str, request_token: str, audience: str | None, transport: Transport | None = None
) -> str:
    """The job's OIDC identity token from GitHub Actions, asked for ``audience``.

    ``GET <ACTIONS_ID_TOKEN_REQUEST_URL>&audience=<audience>`` with the request token as
    bearer; the answer is ``{"value": "<jwt>"}``. ``transport`` is the HTTP transport of
    the context (``None``: the network).
    """
    import httpx2

    from tokenctl.oauth.http import client_options
    from tokenctl.store.connection import checked_address

    where = f"GitHub Actions' identity token endpoint ({GITHUB_URL_VARIABLE})"
    try:
        checked_address(url)  # the bearer token crosses the network only encrypted
    except TokenctlError:
        raise SecretStoreError(
            f"{where} is not an https URL",
            hint=f"{GITHUB_URL_VARIABLE} is set by GitHub Actions; do not set it yourself",
        ) from None
    target = httpx2.URL(url)
    if audience:  # kept with the query GitHub gave (api-version)
        target = target.copy_set_param("audience", audience)
    try:
        with httpx2.Client(**client_options(GITHUB_DEADLINE, transport)) as client:
            response = client.get(
                target,
                headers={"Authorization": f"bearer {request_token}", "Accept": "application/json"},
            )
    except httpx2.HTTPError as error:
        raise SecretStoreError(
            f"{where} cannot be reached ({type(error).__name__})",
            hint="check the runner's network, then run the job again",
        ) from None
    if response.status_code != 200:
        raise SecretStoreError(
            f"{where} answered HTTP {response.status_code}",
            hint="the job needs `permissions: id-token: write` in its workflow",
        )
    try:
        value = response.json().get("value")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value.strip():
        raise SecretStoreError(
            f"{where} did not answer with an identity token",
            hint="run the job again; if it fails again, GitHub's status page may say why",
        )
    return value.strip()


class TokenKeeper:
    """The store token of one command: got on first use, renewed before it expires.

    ``client`` is the :class:`hvac.Client` every call goes through (its token is set
    here), ``login_client`` makes one without a token for the logins (sharing its HTTP
    connections), ``send`` runs a
    call of either and turns the network's and a sealed server's failures into typed
    errors (the server's refusals, hvac's exceptions, pass through). Safe for the
    threads of one command: one of them renews while the others wait.
    """

    def __init__(
        self,
        login: StoreLogin,
        client: hvac.Client,
        login_client: Callable[[], hvac.Client],
        send: Callable[[Callable[[], Any]], Any],
        address: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.login = login
        self.address = address
        self._client = client
        self._login_client = login_client
        self._send = send
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._started = monotonic()
        self._has_token = False
        #: When the token expires (this process's monotonic clock); ``None``: never, or
        #: not known yet.
        self._expires: float | None = None
        #: The seconds it was last granted (by the login, a renewal or the look-up).
        self._granted = 0.0
        self._renewable = False
        self._looked_up = False
        #: Counts the tokens this keeper has set: a call that failed knows whether another
        #: thread got a new one meanwhile.
        self.generation = 0
        #: How often the token was renewed and logged in (tests, ``--debug`` facts).
        self.renewals = 0
        self.logins = 0

    def facts(self) -> dict[str, str | None]:
        """How the store token was got (``store status``): method, auth mount and role."""
        login = self.login
        if isinstance(login, AppRoleLogin):
            return {"method": "approle", "mount": login.mount, "role": login.role_id}
        if isinstance(login, JwtLogin):
            return {"method": "jwt", "mount": login.mount, "role": login.role}
        return {"method": "token", "mount": None, "role": None}

    @property
    def can_log_in(self) -> bool:
        """Whether a new store token can be had here (approle, jwt) once this one is gone."""
        return not isinstance(self.login, TokenLogin)

    def fresh(self) -> None:
        """Make sure the client holds a store token that does not expire soon.

        The first call logs in (or takes the given token); a token with less than
        :data:`RENEW_WHEN_LEFT` of its time left is renewed, or replaced by a new login
        when it cannot be renewed further.
        """
        with self._lock:
            if not self._has_token:
                self._log_in()
                return
            now = self._monotonic()
            if self._expires is None:
                if not self._looked_up and now - self._started >= LOOK_UP_AFTER:
                    self._look_up()
                return
            if self._expires - now > self._granted * RENEW_WHEN_LEFT:
                return
            try:
                if self._renewable and self._renew():
                    return
                if self.can_log_in:
                    self._log_in()
            except SecretStoreError:
                # The server does not answer now (an election, a sealed node): while the
                # token still has time, the call goes on with it and its own retries;
                # renewing is tried again at the next call.
                if self._expires - self._monotonic() <= 0:
                    raise

    def log_in_again(self, refused: int) -> bool:
        """After the server refused the token of generation ``refused``: a new login.

        No login when another thread has replaced that token already; ``False`` for a
        given token (only its owner can get a new one).
        """
        if not self.can_log_in:
            return False
        with self._lock:
            if self.generation == refused:
                self._log_in()
        return True

    def release(self) -> None:
        """Revoke a store token of a login made here: it served this command only.

        A given token is its owner's and stays. A failure changes nothing (the token
        expires at the end of its TTL anyway).
        """
        with self._lock:
            if not self.can_log_in or not self._has_token:
                return
            self._has_token = False
            with contextlib.suppress(Exception):  # best effort: the command's outcome stands
                self._client.auth.token.revoke_self()

    # -- under the lock --------------------------------------------------------------

    def _log_in(self) -> None:
        login = self.login
        if isinstance(login, TokenLogin):
            self._client.token = login.token
            self._has_token = True
            self.generation += 1
            return
        from hvac import exceptions as vault

        client = self._login_client()
        try:
            if isinstance(login, AppRoleLogin):
                answer = self._send(
                    lambda: client.auth.approle.login(
                        login.role_id, login.secret_id, use_token=False, mount_point=login.mount
                    )
                )
            else:
                identity_token = login.identity_token()
                answer = self._send(
                    lambda: client.auth.jwt.jwt_login(
                        login.role, identity_token, use_token=False, path=login.mount
                    )
                )
        except vault.VaultError as error:
            raise self._refused(error) from None
        auth = answer.get("auth") if isinstance(answer, dict) else None
        token = auth.get("client_token") if isinstance(auth, dict) else None
        if not isinstance(auth, dict) or not isinstance(token, str) or not token:
            raise SecretStoreError(
                f"the team store {self.address} answered the {self._what()} without a token",
                hint="check that the address is an OpenBao or Vault server",
            )
        self._client.token = token
        self._has_token = True
        self.generation += 1
        self.logins += 1
        self._granted_now(auth.get("lease_duration"), bool(auth.get("renewable")))

    def _renew(self) -> bool:
        """Renew the token; whether that gave it more time (the max TTL may forbid)."""
        from hvac import exceptions as vault

        before = self._expires
        try:
            answer = self._send(self._client.auth.token.renew_self)
        except (vault.InternalServerError, vault.BadGateway, vault.RateLimitExceeded):
            return False  # the server's trouble, not the token's: tried again later
        except vault.VaultError:  # not renewable (any more): log in again, or run on
            self._renewable = False
            return False
        auth = answer.get("auth") if isinstance(answer, dict) else None
        if not isinstance(auth, dict):
            self._renewable = False
            return False
        self.renewals += 1
        self._granted_now(auth.get("lease_duration"), bool(auth.get("renewable")))
        if before is not None and self._expires is not None and self._expires <= before + 1:
            self._renewable = False  # the max TTL is reached: renewing gives no more time
            return False
        return True

    def _look_up(self) -> None:
        """The given token's time left (``lookup-self``); a failure leaves it unknown."""
        from hvac import exceptions as vault

        self._looked_up = True
        try:
            answer = self._send(self._client.auth.token.lookup_self)
        except vault.VaultError:  # the next call says what is wrong with the token
            return
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            return
        left = data.get("ttl")
        self._granted_now(left, bool(data.get("renewable")))
        granted = data.get("creation_ttl")
        if self._expires is not None and isinstance(granted, int | float) and granted > 0:
            self._granted = max(self._granted, float(granted))

    def _granted_now(self, seconds: object, renewable: bool) -> None:
        """The token was granted ``seconds`` from now (0 or none: it never expires)."""
        lease = float(seconds) if isinstance(seconds, int | float) else 0.0
        self._renewable = renewable
        if lease <= 0:
            self._expires, self._granted = None, 0.0
            self._looked_up = True  # nothing to renew, nothing to ask
            return
        self._expires = self._monotonic() + lease
        self._granted = lease

    def _what(self) -> str:
        login = self.login
        if isinstance(login, AppRoleLogin):
            return f"AppRole login (role id {login.role_id!r}, auth/{login.mount})"
        if isinstance(login, JwtLogin):
            return f"JWT login (role {login.role!r}, auth/{login.mount})"
        return "store token"

    def _refused(self, error: Exception) -> SecretStoreError:
        """The server refused the login: what it said, and what is needed."""
        from hvac import exceptions as vault

        from tokenctl.store.openbao.kv import server_errors

        said = server_errors(error)
        login = self.login
        if isinstance(error, vault.Forbidden | vault.InvalidPath) and "permission denied" in said:
            said += f" (is an auth method mounted at auth/{getattr(login, 'mount', '')}?)"
        if isinstance(login, AppRoleLogin):
            hint = (
                f"the secret id ({login.source}) may have expired or been used up: ask the "
                "team store's administrator for a new one; check store.role (the role id) "
                "and store.auth_mount"
            )
        else:
            assert isinstance(login, JwtLogin)
            hint = (
                f"the job's identity token ({login.source}) must be signed by the issuer "
                f"auth/{login.mount} trusts, unexpired, and carry the audience and claims "
                f"role {login.role!r} is bound to (for GitHub Actions: store.jwt_audience); "
                "check store.role and store.auth_mount"
            )
        return SecretStoreError(
            f"the team store {self.address} refused the {self._what()}: {said}", hint=hint
        )
