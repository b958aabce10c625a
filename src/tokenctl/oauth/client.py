"""The provider client: one per (definition, endpoints, attributes), handed out by AppContext.

It is built once for a definition whose placeholders are filled from a token's
attributes (tenant, environment, ...). Its endpoints are resolved once (discovery runs
once, not again for every refresh, probe and revocation), its client credentials are
read once, and every call goes through the HTTP transport the
:class:`~tokenctl.context.AppContext` carries (the network, or a test's mock) under the
total deadline of :mod:`tokenctl.oauth.http`. Like gh's Factory handing out its
``HttpClient``: commands ask the context, tests swap the transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tokenctl.definitions.model import Definition, OAuth2Settings
from tokenctl.errors import ConfigError, TokenctlError, UsageError
from tokenctl.oauth.provider import ClientCredentials, Endpoints

if TYPE_CHECKING:
    from tokenctl.models import TokenSecrets
    from tokenctl.oauth.provider import DeviceAuthorization, Transport

#: What tells two clients of one definition apart: its name and the placeholder values.
ClientKey = tuple[str, tuple[tuple[str, str | None], ...]]


def oauth_settings(definition: Definition) -> OAuth2Settings:
    """The definition's OAuth settings; a static definition is a usage error."""
    if definition.oauth2 is None:
        raise UsageError(f"definition {definition.name!r} is not an OAuth definition")
    return definition.oauth2


#: Looks up the stored client secret of ``(definition name, client id)``; ``None``: none.
ClientSecretLookup = Callable[[str, str], "str | None"]


def client_credentials(lookup: ClientSecretLookup, definition: Definition) -> ClientCredentials:
    """The client registration: id from the definition, secret from the inventory."""
    settings = oauth_settings(definition)
    if not settings.client_id:
        raise ConfigError(
            f"definition {definition.name!r} has no client id",
            hint=f"run `tokenctl definitions configure {definition.name} --client-id ID`",
        )
    secret = lookup(definition.name, settings.client_id)
    method = settings.token_endpoint_auth_method or ("client_secret_basic" if secret else "none")
    if method != "none" and not secret:
        raise ConfigError(
            f"definition {definition.name!r} uses {method} but no client secret is stored",
            hint=f"run `tokenctl definitions configure {definition.name} --client-id "
            f"{settings.client_id} --client-secret-stdin`",
        )
    return ClientCredentials(settings.client_id, secret, method)


def client_key(definition: Definition, attributes: Mapping[str, str]) -> ClientKey:
    """The cache key of the client for ``definition`` filled from ``attributes``."""
    used = tuple(sorted((name, attributes.get(name)) for name in definition.placeholders))
    return definition.name, used


class ProviderClient:
    """Every call tokenctl makes to one provider, for one filled definition.

    Endpoints and credentials are looked up on first use and kept: a probe through
    userinfo needs no client secret, and a definition without a client id can still be
    probed. The async face (``renew --all``) keeps one authlib ``AsyncOAuth2Client`` for
    all its tokens; :meth:`aclose` closes it.
    """

    def __init__(
        self,
        definition: Definition,
        *,
        client_secret: ClientSecretLookup,
        transport: Transport | None = None,
    ) -> None:
        self.definition = definition
        self.settings = oauth_settings(definition)
        self._client_secret = client_secret
        self._transport = transport
        self._endpoints: Endpoints | None = None
        self._credentials: ClientCredentials | None = None
        self._async_session: Any = None

    @classmethod
    def build(
        cls,
        definition: Definition,
        attributes: Mapping[str, str],
        *,
        client_secret: ClientSecretLookup,
        transport: Transport | None = None,
    ) -> ProviderClient:
        """The client for ``definition`` with its placeholders filled from ``attributes``."""
        from tokenctl.definitions.model import fill_placeholders

        # A static definition is filled as it is; __init__ then refuses it.
        filled = fill_placeholders(definition, attributes)
        return cls(filled, client_secret=client_secret, transport=transport)

    @property
    def endpoints(self) -> Endpoints:
        """The endpoints in effect, completed by discovery on first use (once)."""
        if self._endpoints is None:
            from tokenctl.oauth.provider import resolve_endpoints

            self._endpoints = resolve_endpoints(self.definition, self._transport)
        return self._endpoints

    @property
    def credentials(self) -> ClientCredentials:
        """The client registration, read on first use (once)."""
        if self._credentials is None:
            self._credentials = client_credentials(self._client_secret, self.definition)
        return self._credentials

    # -- token requests -----------------------------------------------------------------

    def refresh(self, refresh_token: str) -> Mapping[str, Any]:
        """The refresh grant (sync)."""
        from tokenctl.oauth.provider import refresh

        return refresh(self.credentials, self.endpoints, refresh_token, self._transport)

    async def refresh_async(self, refresh_token: str) -> Mapping[str, Any]:
        """The refresh grant on the shared async session; errors mapped as the sync face's."""
        from tokenctl.oauth.http import within_deadline
        from tokenctl.oauth.provider import token_call_errors

        session = self._async()
        url = self.endpoints.token_endpoint
        with token_call_errors(url, sent=(refresh_token, self.credentials.client_secret)):
            response: Mapping[str, Any] = await within_deadline(
                session.refresh_token(url, refresh_token=refresh_token),
                url,
                self.endpoints.call_deadline,
            )
        return response

    def _async(self) -> Any:
        if self._async_session is None:
            from authlib.integrations.httpx_client import AsyncOAuth2Client

            from tokenctl.oauth.http import async_client_options
            from tokenctl.oauth.provider import credential_options, shield_lifetimes

            session = AsyncOAuth2Client(
                **credential_options(self.credentials),
                **async_client_options(self._transport),
            )
            shield_lifetimes(session)
            self._async_session = session
        return self._async_session

    async def aclose(self) -> None:
        """Close the async session, if one was opened."""
        session, self._async_session = self._async_session, None
        if session is not None:
            await session.aclose()

    def exchange_code(
        self, *, code: str, code_verifier: str, redirect_uri: str
    ) -> Mapping[str, Any]:
        """Exchange an authorization code for tokens."""
        from tokenctl.oauth.provider import exchange_code

        return exchange_code(
            self.credentials,
            self.endpoints,
            code=code,
            code_verifier=code_verifier,
            redirect_uri=redirect_uri,
            transport=self._transport,
        )

    def start_device_authorization(self, scopes: tuple[str, ...]) -> DeviceAuthorization:
        """Ask for a user code (RFC 8628 §3.1)."""
        from tokenctl.oauth.provider import start_device_authorization

        return start_device_authorization(
            self.credentials,
            self.endpoints,
            scopes,
            self._transport,
            scope_separator=self.settings.scope_separator,
        )

    def poll_device_token(
        self,
        device: DeviceAuthorization,
        *,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        timeout: float | None = None,
    ) -> Mapping[str, Any]:
        """Poll the token endpoint until the device login is approved, denied or expired."""
        from tokenctl.oauth.provider import poll_device_token

        return poll_device_token(
            self.credentials,
            self.endpoints,
            device,
            sleep=sleep,
            clock=clock,
            timeout=timeout,
            transport=self._transport,
        )

    # -- about a token ------------------------------------------------------------------

    def revoke_grant(self, secrets: TokenSecrets) -> tuple[bool, str]:
        """Revoke a grant (refresh token first); never raises for the provider."""
        from tokenctl.oauth.provider import revoke

        try:
            endpoints = self.endpoints
            credentials = self.credentials
        except TokenctlError as error:
            return False, error.message
        if not endpoints.revocation_endpoint:
            return False, "the provider has no revocation endpoint"
        if secrets.refresh_token:
            return revoke(
                credentials, endpoints, secrets.refresh_token, "refresh_token", self._transport
            )
        if secrets.access_token:
            return revoke(
                credentials, endpoints, secrets.access_token, "access_token", self._transport
            )
        return False, "no token to revoke"

    def introspect(self, token: str) -> bool:
        """Ask the introspection endpoint (RFC 7662) whether ``token`` is active."""
        from tokenctl.oauth.provider import introspect

        return introspect(self.credentials, self.endpoints, token, self._transport)

    def bearer_get(self, url: str, access_token: str) -> tuple[int, Mapping[str, Any] | None]:
        """GET ``url`` with the access token: the status and the JSON object if any."""
        from tokenctl.oauth.provider import bearer_get

        return bearer_get(
            url, access_token, deadline=self.endpoints.call_deadline, transport=self._transport
        )

    def bearer_get_any(self, url: str, access_token: str) -> tuple[int, Any]:
        """GET ``url`` with the access token: the status and the JSON body if any."""
        from tokenctl.oauth.provider import bearer_get_any

        return bearer_get_any(
            url, access_token, deadline=self.endpoints.call_deadline, transport=self._transport
        )

    def probe_get(self, access_token: str) -> tuple[int, Any]:
        """Call the definition's ``probe_url`` about ``access_token``, as the definition says.

        As a bearer GET, or with the token in ``probe_token_parameter`` (then as the client).
        """
        url = self.settings.probe_url
        if url is None:
            raise ConfigError(f"definition {self.definition.name!r} has no probe_url")
        parameter = self.settings.probe_token_parameter
        if parameter is None:
            return self.bearer_get_any(url, access_token)
        from tokenctl.oauth.provider import token_parameter_get

        try:
            credentials: ClientCredentials | None = self.credentials
        except ConfigError:
            credentials = None  # no client registered: ask without proving who is asking
        return token_parameter_get(
            url,
            parameter,
            access_token,
            credentials,
            deadline=self.endpoints.call_deadline,
            transport=self._transport,
        )

    def validate_id_token(
        self, id_token: str, *, nonce: str | None, access_token: str | None
    ) -> dict[str, Any]:
        """Check an id token against this provider's keys, issuer and this client."""
        from tokenctl.oauth.provider import validate_id_token

        return validate_id_token(
            id_token,
            endpoints=self.endpoints,
            client_id=self.credentials.client_id,
            nonce=nonce,
            access_token=access_token,
            transport=self._transport,
        )
