"""The KV version 2 calls the team store makes, through :mod:`hvac`, with typed failures.

Every failure of the server or the way to it becomes a :class:`SecretStoreError` (exit 4)
that names the server and the path and says what is needed; a write refused by
check-and-set becomes :class:`CasConflict`, which the inventory answers by reading again.

High availability (a Raft cluster behind one address: a load balancer, or any node).
Measured on OpenBao 2.7.2, three nodes, the leader killed with SIGKILL: a standby keeps
answering reads from its own copy, but writes sent to it fail for 1.5 to 3 seconds (a
redirect to the dead leader, whose port refuses connections, then 500 "local node not
active but active cluster node not found") until a new leader is elected. So:

- Transient failures (no connection, a reset, a timeout, 500, 502, 503 and 429 answers:
  an election, a sealed node, a busy one) are retried with a growing wait, for at most
  :data:`RETRY_FOR` seconds per outage, but only once the server has answered this
  process: an address where nothing ever answered, or a server sealed from the start,
  is reported at once. Reads are safe to retry; so are writes with check-and-set, and a
  write of the same data without it. A write that landed before its answer was lost
  comes back from the retry as "check-and-set parameter did not match": the version it
  would have made is read, and when it holds our data the write counts as done. Deletes
  are not retried (one retried after another machine made the key again would remove
  theirs).
- A standby's copy lags the leader: without help a read right after a write sees the
  old version (measured: 200 of 200 reads on a standby) and check-and-set writes checked
  there fail spuriously. Every write's ``X-Vault-Index`` answer is sent back with the
  following requests, with ``X-Vault-Inconsistent: forward-active-node``: a node that
  has not applied our last write yet forwards the request to the leader (measured: no
  stale read, no spurious conflict). A server without replication sends no index.
- Another machine's write is not covered by our index: a write that check-and-set
  refused because of it, then a read on a standby, misses it (measured: 5 of 5). So the
  next read of a key whose write was refused asks again until it has a newer version.
"""

from __future__ import annotations

import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from tokenctl.store.openbao.auth import StoreLogin

from tokenctl.errors import InventoryError, SecretStoreError, TokenctlError

#: Reads of one ``read_all`` in flight at once (``list`` reads one page per 100 tokens).
READ_CONCURRENCY = 8
#: Seconds calls keep retrying while the team store does not answer (an election takes
#: a few); then the failure is reported. Counted from the outage's first failure.
RETRY_FOR = 30.0
#: The first and the longest wait between two attempts (seconds; each wait doubles).
FIRST_WAIT, LONGEST_WAIT = 0.1, 2.0
#: Seconds a read after a refused check-and-set waits for the node it asks to catch up
#: (a standby applies the leader's writes milliseconds later), and how often it asks.
CATCH_UP_FOR, CATCH_UP_POLL = 2.0, 0.01
#: The headers that give read-after-write consistency on a cluster's standbys.
INDEX_HEADER, INCONSISTENT_HEADER = "X-Vault-Index", "X-Vault-Inconsistent"
#: The field every write adds to what it stores: a random id of that one write, so a
#: retried write can tell its own landed first attempt from another machine's write of
#: the same data (two machines drawing the same next number write the same counter).
#: Reads drop it: callers see what they wrote.
WRITE_ID = "_write_id"

_POLICY_HINT = (
    "ask the team store's administrator for a policy that grants it; if the store token "
    "has expired, get a new one"
)


class CasConflict(Exception):  # noqa: N818 - a signal to read again, not a failure
    """Another writer changed the key since it was read: check-and-set refused the write.

    ``after_retry``: an earlier attempt of the same write failed on the way, so it may
    have landed (:meth:`KvStore.write` then looks).
    """

    def __init__(self, path: str, *, after_retry: bool = False) -> None:
        super().__init__(path)
        self.after_retry = after_retry


class _TokenRefused(Exception):  # noqa: N818 - a signal to log in again, not a failure
    """The server no longer accepts the store token (it expired, or was revoked)."""


@dataclass(frozen=True)
class Entry:
    """The current version of one key: its data, version number and creation time."""

    data: dict[str, Any]
    version: int
    #: When the server wrote this version (RFC 3339, the server's clock).
    created_time: str


class KvStore:
    """One KV version 2 mount on one server, reached with one store login.

    ``token`` is the store token, or the login that gets one (:mod:`.auth`): made on the
    first call, the token renewed (or the login made again) as it nears its end.
    """

    def __init__(
        self,
        address: str,
        token: str | StoreLogin,
        mount: str,
        *,
        namespace: str | None = None,
        verify: bool | str = True,
        timeout: float = 30.0,
        retry_for: float = RETRY_FOR,
    ) -> None:
        import hvac  # here, not at the top: only the team store pays for it
        import requests

        from tokenctl.store.openbao.auth import TokenKeeper, TokenLogin

        self.address = address.rstrip("/")
        self.mount = mount
        self.retry_for = retry_for
        #: Whether the server has given this process a real answer (retries wait for it).
        self._served = False
        #: When the current outage began (``time.monotonic``); ``None`` while it answers.
        self._outage_since: float | None = None
        self._state = threading.Lock()
        #: Paths whose write check-and-set refused, and the version it expected.
        self._refused_versions: dict[str, int] = {}
        session = requests.Session()
        # Present from the start (requests leaves out headers set to None): setting them
        # later replaces a value and never resizes the headers that other threads'
        # requests are reading (renew --all on the team store runs steps side by side).
        session.headers[INDEX_HEADER] = None  # type: ignore[assignment]
        session.headers[INCONSISTENT_HEADER] = None  # type: ignore[assignment]
        session.hooks["response"].append(self._note_index)
        self._session = session
        # The proxy settings of the environment (HTTPS_PROXY, NO_PROXY) are read once
        # here: requests would read them (and ~/.netrc) again on every request, which
        # costs about as much as a KV read on loopback. The CA is ``verify``'s alone.
        session.proxies.update(requests.utils.get_environ_proxies(self.address))
        session.trust_env = False

        def client() -> hvac.Client:
            # token "": never hvac's own look-up of VAULT_TOKEN or ~/.vault-token
            return hvac.Client(
                url=self.address,
                token="",
                namespace=namespace,
                verify=verify,
                timeout=timeout,
                session=session,
            )

        self._client = client()
        self._kv = self._client.secrets.kv.v2
        login = TokenLogin(token) if isinstance(token, str) else token
        #: The store token: logged in on the first call, kept fresh during long runs.
        self.keeper = TokenKeeper(login, self._client, client, self._send, self.address)
        self._pool: ThreadPoolExecutor | None = None
        #: A call found the server sealed or unreachable (``close`` then asks nothing).
        self._unreachable = False

    def _note_index(self, response: Any, *args: Any, **kwargs: Any) -> None:
        """Send the index of our last write with every later request (see the module doc).

        A requests hook, run by the thread that made the request. When several threads
        write (``renew --all``), the index sent is that of the write that answered last,
        which may be a moment older than the newest: a standby then answers a read that
        one of them needs a moment too early, and check-and-set refuses the write that
        follows it, which is read and made again.
        """
        index = response.headers.get(INDEX_HEADER)
        if index and response.request.method not in ("GET", "LIST", "HEAD"):
            self._session.headers[INDEX_HEADER] = index
            self._session.headers[INCONSISTENT_HEADER] = "forward-active-node"

    def close(self) -> None:
        """Close the HTTP connections (and stop the threads of ``read_all``).

        A store token of a login made here (approle, jwt) is revoked first: it served
        this command only. Not after the server could not be reached (no wait for it).
        """
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if not self._unreachable:
            self.keeper.release()
        self._client.adapter.close()

    # -- calls ---------------------------------------------------------------------------

    def read(self, path: str, *, secret: bool = False) -> Entry | None:
        """The current version of ``path``; ``None`` when there is none (or it was deleted).

        After a write of ours to ``path`` was refused by check-and-set, read again (for
        :data:`CATCH_UP_FOR` at most) until the answer has the version that refused it:
        a standby may not have that other machine's write yet.
        """
        refused_at = self._refused_versions.pop(path, None)
        entry = self._read_current(path, secret)
        deadline = time.monotonic() + CATCH_UP_FOR
        while refused_at is not None and _older(entry, refused_at):
            if time.monotonic() > deadline:
                break
            time.sleep(CATCH_UP_POLL)
            entry = self._read_current(path, secret)
        return entry

    def _read_current(self, path: str, secret: bool) -> Entry | None:
        response = self._call(
            "read",
            path,
            secret,
            lambda: self._kv.read_secret_version(
                path, mount_point=self.mount, raise_on_deleted_version=True
            ),
            missing_ok=True,
        )
        if response is None:
            return None
        try:
            body = response["data"]
            data, metadata = body["data"], body["metadata"]
            if data is None:  # a deleted version (tokenctl removes keys; another tool did)
                return None
            version = int(metadata["version"])
            if not isinstance(data, dict):
                raise TypeError("data is not an object")
            data.pop(WRITE_ID, None)
            return Entry(data, version, str(metadata.get("created_time") or ""))
        except (KeyError, TypeError, ValueError):
            raise self._not_kv2() from None

    def read_many(self, paths: Sequence[str], *, secret: bool = False) -> list[Entry | None]:
        """:meth:`read` of each path, several at once; in the order of ``paths``."""
        return self.read_all([(path, secret) for path in paths])

    def read_all(self, reads: Sequence[tuple[str, bool]]) -> list[Entry | None]:
        """:meth:`read` of each ``(path, secret)``, several at once; in their order.

        Every read has finished when this returns or raises (the first failure).
        """
        if len(reads) <= 1:
            return [self.read(path, secret=secret) for path, secret in reads]
        with self._state:  # steps on several threads may be first at once
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(READ_CONCURRENCY, thread_name_prefix="tokenctl-kv")
        futures = [self._pool.submit(self.read, path, secret=secret) for path, secret in reads]
        found: list[Entry | None] = []
        failure: BaseException | None = None
        for future in futures:
            try:
                found.append(future.result())
            except BaseException as error:  # every read ends before the first failure is raised
                failure = failure or error
                found.append(None)
        if failure is not None:
            raise failure
        return found

    def write(
        self, path: str, data: dict[str, Any], *, cas: int | None, secret: bool = False
    ) -> int:
        """Write a new version of ``path``; its version number.

        ``cas`` is the version the write expects to replace (0: the key must not exist;
        ``None``: whatever is there); :class:`CasConflict` when it is not the current one.
        Retried while the server is unavailable; a retry refused by check-and-set because
        the first attempt had landed after all returns that attempt's version.
        """
        stored = {**data, WRITE_ID: secrets.token_hex(16)}
        try:
            response = self._call(
                "write",
                path,
                secret,
                lambda: self._kv.create_or_update_secret(
                    path, secret=stored, cas=cas, mount_point=self.mount
                ),
            )
        except CasConflict as conflict:
            if cas is None:
                raise
            # A retry refused: our first attempt may have landed before its answer was lost.
            if conflict.after_retry and self._landed(path, cas + 1, stored, secret):
                return cas + 1
            self._refused_versions[path] = cas
            raise
        try:
            return int(response["data"]["version"])
        except (KeyError, TypeError, ValueError):
            raise self._not_kv2() from None

    def _landed(self, path: str, version: int, data: dict[str, Any], secret: bool) -> bool:
        """Whether ``version`` of ``path`` exists and holds ``data`` (our write landed).

        Check-and-set refused ``version - 1``, so ``version`` was written, by us or by
        another machine: asked again until the node that answers has it. ``data`` holds
        this write's :data:`WRITE_ID`: another machine's write of the same values is not
        taken for ours.
        """
        deadline = time.monotonic() + CATCH_UP_FOR
        while True:
            response = self._call(
                "read",
                path,
                secret,
                lambda: self._kv.read_secret_version(
                    path, version=version, mount_point=self.mount, raise_on_deleted_version=True
                ),
                missing_ok=True,
            )
            if response is not None or time.monotonic() > deadline:
                break
            time.sleep(CATCH_UP_POLL)
        try:
            return response is not None and response["data"]["data"] == data
        except (KeyError, TypeError):
            return False

    def remove(self, path: str, *, secret: bool = False) -> None:
        """Delete ``path`` with every version and its metadata (it may be created anew)."""
        self._call(
            "delete",
            path,
            secret,
            lambda: self._kv.delete_metadata_and_all_versions(path, mount_point=self.mount),
            retry=False,
        )

    def keys(self, folder: str) -> list[str]:
        """The names listed under ``folder`` (sub-folders end with ``/``); none if empty."""
        response = self._call(
            "list",
            folder,
            False,
            lambda: self._kv.list_secrets(folder, mount_point=self.mount),
            missing_ok=True,
        )
        if response is None:
            return []
        try:
            return [str(key) for key in response["data"]["keys"]]
        except (KeyError, TypeError):
            raise self._not_kv2() from None

    def server_time(self) -> datetime | None:
        """The server's clock (``sys/health``, open to everyone); ``None`` if it says nothing.

        Compared with the creation times of keys, which are the server's too.
        """
        try:
            health = self._client.sys.read_health_status(method="GET", standby_ok=True)
            return datetime.fromtimestamp(int(health["server_time_utc"]), UTC)
        except Exception:  # no answer here: the caller uses its own clock
            return None

    # -- the server and the identity (``store status``, ``doctor``) -----------------------

    def health(self) -> dict[str, Any]:
        """``sys/health`` (open to everyone): version, sealed, initialized, standby.

        Answers when the server is sealed too; a server that cannot be reached is a
        :class:`SecretStoreError` naming it.
        """
        response = self._call(
            "ask the health of",
            "sys/health",
            False,
            lambda: self._client.sys.read_health_status(
                method="GET",
                standby_ok=True,
                performance_standby_code=200,
                sealed_code=200,
                uninit_code=200,
            ),
            api=True,
        )
        return _answer(response)

    def identity(self) -> dict[str, Any]:
        """What the server knows of the store token (``auth/token/lookup-self``)."""
        response = self._call(
            "look up the store token at",
            "auth/token/lookup-self",
            False,
            self._client.auth.token.lookup_self,
            api=True,
        )
        data = _answer(response).get("data")
        return data if isinstance(data, dict) else {}

    def capabilities(self, paths: Sequence[str]) -> dict[str, list[str]]:
        """The store token's capabilities on each API path (``sys/capabilities-self``)."""
        response = self._call(
            "ask the capabilities of the store token at",
            "sys/capabilities-self",
            False,
            lambda: self._client.adapter.post(
                "/v1/sys/capabilities-self", json={"paths": list(paths)}
            ),
            api=True,
        )
        answer = _answer(response)
        answer = answer.get("data", answer) if isinstance(answer.get("data"), dict) else answer
        found: dict[str, list[str]] = {}
        for path in paths:
            granted = answer.get(path)
            if granted is None and len(paths) == 1:
                granted = answer.get("capabilities")
            found[path] = [str(item) for item in granted] if isinstance(granted, list) else []
        return found

    # -- failures ------------------------------------------------------------------------

    def _call(
        self,
        action: str,
        path: str,
        secret: bool,
        call: Callable[[], Any],
        *,
        missing_ok: bool = False,
        api: bool = False,
        retry: bool = True,
    ) -> Any:
        """Run ``call`` with a fresh store token, again while the failure is transient.

        A failure as a typed error; a missing key is ``None`` when ``missing_ok``.
        ``retry``: whether running ``call`` twice is safe (see the module's
        documentation). A store token the server no longer accepts is replaced by a new
        login (approle, jwt) and the call made once more.
        """
        self.keeper.fresh()
        generation = self.keeper.generation
        options: dict[str, Any] = {"missing_ok": missing_ok, "api": api, "retry": retry}
        try:
            return self._attempts(action, path, secret, call, **options)
        except _TokenRefused:
            if not self.keeper.log_in_again(generation):
                raise self._token_refused() from None
        try:
            return self._attempts(action, path, secret, call, **options)
        except _TokenRefused:
            raise self._token_refused() from None

    def _attempts(
        self,
        action: str,
        path: str,
        secret: bool,
        call: Callable[[], Any],
        *,
        missing_ok: bool,
        api: bool,
        retry: bool,
    ) -> Any:
        """Run ``call``, again while the failure is transient (:meth:`_call`)."""
        import requests
        from hvac.exceptions import VaultDown, VaultError

        attempt = 0
        while True:
            try:
                answer = call()
            except Exception as error:
                if not _transient(error):
                    if isinstance(error, VaultError):  # a refusal is an answer too
                        self._answered()
                elif retry and self._may_retry():
                    attempt += 1
                    time.sleep(_wait(attempt))
                    continue
                if isinstance(error, VaultDown | requests.exceptions.RequestException):
                    self._unreachable = True
                return self._failure(
                    error, action, path, secret, missing_ok=missing_ok, api=api, retried=attempt
                )
            self._answered()
            return answer

    def _answered(self) -> None:
        """The server answered (an outage, if any, is over)."""
        with self._state:
            self._served = True
            self._outage_since = None

    def _may_retry(self) -> bool:
        """Whether to retry a transient failure.

        Yes once the server answered this process, while the outage is younger than
        :attr:`retry_for`.
        """
        with self._state:
            if not self._served:
                return False
            now = time.monotonic()
            if self._outage_since is None:
                self._outage_since = now
            return now - self._outage_since < self.retry_for

    def _send(self, call: Callable[[], Any]) -> Any:
        """Run one call of the login (:mod:`.auth`); a sealed server or no answer typed.

        The server's refusals (hvac's other exceptions) are raised as they are: the login
        words them.
        """
        import requests
        from hvac.exceptions import VaultDown

        try:
            return call()
        except (VaultDown, requests.exceptions.RequestException) as error:
            self._unreachable = True
            self._failure(error, "log in at", "auth", False, missing_ok=False, api=True, retried=0)
            raise  # _failure raises for these

    def _failure(
        self,
        error: Exception,
        action: str,
        path: str,
        secret: bool,
        *,
        missing_ok: bool,
        api: bool,
        retried: int,
    ) -> None:
        """Raise the typed error for ``error`` (``None``: a missing key, when ``missing_ok``).

        ``retried``: how many times the call was retried first.
        """
        import requests
        from hvac import exceptions as vault

        where = path if api else f"{self.mount}/{path}"  # the server is named already
        if api and isinstance(error, (vault.InvalidPath, vault.InvalidRequest, vault.Forbidden)):
            raise self._api_refused(action, path, error) from None  # the server's own API
        if isinstance(error, vault.InvalidPath):
            if _mentions(error, "no handler for route"):
                raise self._no_mount() from None
            if missing_ok:
                return None
            raise self._refused(action, path, error) from None
        if isinstance(error, vault.InvalidRequest):
            if _mentions(error, "check-and-set parameter did not match"):
                raise CasConflict(path, after_retry=retried > 0) from None
            raise self._refused(action, path, error) from None
        if isinstance(error, vault.Forbidden):
            raise self._forbidden(action, path, secret) from None
        if isinstance(error, vault.VaultDown) and _mentions(error, "sealed"):
            raise SecretStoreError(
                f"the team store {self.address} is sealed: nothing in it can be read or "
                f"written (could not {action} {where})",
                hint="an operator unseals it (`bao operator unseal`); then run the command again",
            ) from None
        if isinstance(error, vault.VaultDown):
            raise self._unavailable(_errors(error), action, where, retried) from None
        if isinstance(error, vault.VaultError):
            if _transient(error):
                raise self._unavailable(_errors(error), action, where, retried) from None
            raise self._refused(action, path, error) from None
        if isinstance(error, requests.exceptions.SSLError):
            raise SecretStoreError(
                f"the TLS certificate of the team store {self.address} cannot be verified",
                hint="give the certificate of the CA that signed it (BAO_CACERT); tokenctl "
                "never skips the verification",
            ) from None
        if isinstance(error, requests.exceptions.InvalidJSONError):
            raise SecretStoreError(
                f"{self.address} does not answer as OpenBao or Vault does",
                hint="check the team store's address (BAO_ADDR)",
            ) from None
        if isinstance(error, requests.exceptions.RequestException):
            raise self._unavailable(_network_reason(error), action, where, retried) from None
        raise error

    def _where(self, path: str) -> str:
        return f"{self.mount}/{path} on the team store {self.address}"

    def _where_api(self, path: str) -> str:
        return f"{path} on the team store {self.address}"

    def _api_refused(self, action: str, path: str, error: Exception) -> SecretStoreError:
        """A call of the server's own API (``sys/...``, ``auth/...``) refused."""
        from hvac import exceptions as vault

        if isinstance(error, vault.Forbidden) and not self._token_valid():
            raise _TokenRefused
        return SecretStoreError(
            f"the team store refused to {action} {self._where_api(path)}: {_errors(error)}",
            hint=_POLICY_HINT,
        )

    def _token_refused(self) -> SecretStoreError:
        if self.keeper.can_log_in:
            return SecretStoreError(
                f"the team store {self.address} does not accept the store token it gave "
                "at the login just made",
                hint="ask the team store's administrator to check the role's token settings",
            )
        return SecretStoreError(
            f"the team store {self.address} does not accept the store token: it has "
            "expired or was revoked",
            hint="get a new store token (BAO_TOKEN, or `bao login`) and run the command again",
        )

    def _forbidden(self, action: str, path: str, secret: bool) -> TokenctlError:
        """Permission denied: the store token is no longer valid, or its policies say no."""
        if not self._token_valid():
            raise _TokenRefused
        verb = "read" if action in ("read", "list") else "write"
        what = "secrets" if secret else "the inventory"
        return SecretStoreError(
            f"this identity may not {verb} {what} at {self._where(path)}", hint=_POLICY_HINT
        )

    def _token_valid(self) -> bool:
        """Whether the server still knows the store token (every token may look itself up).

        Only a refused look-up says no; any other failure leaves the policy to blame.
        """
        from hvac import exceptions as vault

        try:
            self._client.auth.token.lookup_self()
        except vault.Forbidden:
            return False
        except Exception:  # noqa: S110 - not known to be invalid: the policy message stands
            pass
        return True

    def _refused(self, action: str, path: str, error: Exception) -> SecretStoreError:
        return SecretStoreError(
            f"the team store refused to {action} {self._where(path)}: {_errors(error)}",
            hint="run the command again; if it fails again, the server's log says why",
        )

    def _unavailable(self, reason: str, action: str, where: str, retried: int) -> SecretStoreError:
        if retried:
            seconds = f"{self.retry_for:g}"
            return SecretStoreError(
                f"the team store {self.address} did not answer for {seconds} seconds "
                f"({reason}): could not {action} {where}",
                hint="check that OpenBao is running and has an active node (`bao status`), "
                "and the network; then run the command again",
            )
        return SecretStoreError(
            f"the team store {self.address} does not answer ({reason}): could not {action} {where}",
            hint="check its address (BAO_ADDR), the network, and that OpenBao is running; "
            "then run the command again",
        )

    def _no_mount(self) -> SecretStoreError:
        return SecretStoreError(
            f"the team store {self.address} has no secrets engine mounted at {self.mount}",
            hint=f"enable a KV version 2 engine there: `bao secrets enable -path={self.mount} "
            "-version=2 kv`",
        )

    def _not_kv2(self) -> InventoryError:
        return InventoryError(
            f"the secrets engine at {self.mount} on the team store {self.address} does not "
            "answer as KV version 2 does",
            hint="the team store needs a KV version 2 engine: `bao secrets enable "
            f"-path={self.mount} -version=2 kv` (or `bao kv enable-versioning {self.mount}`)",
        )


def _older(entry: Entry | None, refused_at: int) -> bool:
    """Whether ``entry`` is older than the version that refused a write with ``cas=refused_at``."""
    return (0 if entry is None else entry.version) <= refused_at


def _transient(error: Exception) -> bool:
    """Whether ``error`` may be gone in a moment.

    No connection, an election, a sealed or busy node; not the server's own refusals,
    nor a TLS failure.
    """
    import requests
    from hvac import exceptions as vault

    if isinstance(error, requests.exceptions.SSLError):
        return False
    return isinstance(
        error,
        (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
            vault.InternalServerError,
            vault.BadGateway,
            vault.VaultDown,
            vault.RateLimitExceeded,
        ),
    )


def _wait(attempt: int) -> float:
    """Seconds before retry ``attempt`` (from 1): doubling, capped, with random jitter.

    The jitter keeps many clients from coming back in step.
    """
    longest = min(LONGEST_WAIT, FIRST_WAIT * 2 ** (attempt - 1))
    return random.uniform(longest / 2, longest)  # noqa: S311 - not a secret


def _answer(response: Any) -> dict[str, Any]:
    """A JSON object answered by the server (hvac hands back a ``Response`` at times)."""
    if hasattr(response, "json"):
        response = response.json()
    return response if isinstance(response, dict) else {}


def server_errors(error: Exception) -> str:
    """The server's own error text of an hvac error, on one line (for other modules)."""
    return _errors(error)


def _errors(error: Exception) -> str:
    """The server's own error text, on one line."""
    errors = getattr(error, "errors", None)
    if errors:
        text = "; ".join(str(item) for item in errors)
    else:
        text = str(error.args[0]) if error.args else ""
    return " ".join(text.replace("*", " ").split()) or type(error).__name__


def _mentions(error: Exception, text: str) -> bool:
    return text in _errors(error)


_ERRNO_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _network_reason(error: Exception) -> str:
    """Why the server could not be reached, in a few words (``Connection refused``)."""
    found = _ERRNO_REASON.search(str(error))
    if found:
        return found.group(1).strip()
    name = type(error).__name__
    return "timed out" if "Timeout" in name else name
