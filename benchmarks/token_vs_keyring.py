"""Benchmark ``tokenctl token REF`` against reading its data key entry with ``keyring``.

Starts a private Secret Service (gnome-keyring, ``tests/peers``) and, unless
``--no-oauth``, the local OpenID provider, then adds two tokens to a throw-away home with
real ``tokenctl`` commands:

* a static token: ``tokenctl add NAME --definition api-key --secret-stdin``;
* an OAuth token: ``tokenctl add NAME --definition ... --yes --no-browser``, the login
  played by ``OidcServer.browser_login`` (its access token is valid for an hour, so
  ``token`` never refreshes it: the provider's counters are checked for that).

Then it times real subprocesses, interleaved: ``tokenctl token REF`` and its baseline
``python -m keyring get tokenctl inventory-ID``, the entry holding the inventory's data
key (``show REF --json`` -> ``token.secret.key_entry``), same interpreter, same Secret
Service. ``token`` reads that entry once and opens the token's sealed secret with it; the
bar says what it does beyond the keyring read is not measurable:

* ``tokenctl token`` takes at most 1.0 times the ``keyring get`` baseline (median),
  for each kind of token.

Exit status: 0 when every check passes, 1 when one fails, 2 when the benchmark cannot run.
This is a script, not a test; run it by hand (see benchmarks/README.md)::

    python benchmarks/token_vs_keyring.py [--rounds 15] [--no-oauth] [--profile DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from list_overview import (
    BenchmarkError,
    Case,
    Check,
    Timing,
    benchmark_parser,
    child_environment,
    console_script,
    entry,
    measure,
    packages_beyond,
    passed,
    report,
)

from tokenctl.inventory.sqlite import SqliteInventory
from tokenctl.paths import HOME_ENV, resolve_paths
from tokenctl.secrets.keyring_store import OsKeyring

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # the peers live in tests/peers

from tests.peers.oidc_server import (  # noqa: E402
    PUBLIC_CLIENT_ID,
    OidcPeerError,
    OidcServer,
    is_installed,
    start_oidc_provider,
)
from tests.peers.secret_service import (  # noqa: E402
    SecretService,
    SecretServiceError,
    SecretServiceUnavailable,
    start_secret_service,
)

#: ``tokenctl token`` must take at most this multiple of the ``keyring get`` baseline.
RATIO_LIMIT = 1.0
STATIC_NAME = "bench-static"
OAUTH_NAME = "bench-oauth"
DEFINITION = "bench-books"
SCOPES = ("openid", "offline_access", "email", "invoices:read", "invoices:write")
USER, PASSWORD = "alice", "alice-password"
LOGIN_URL_TIMEOUT = 30.0

#: Runs the CLI's entry point, then reports every imported module on stderr's last line.
TOKEN_PROBE = """
import sys
from tokenctl.__main__ import main
sys.argv = ["tokenctl", *sys.argv[1:]]
try:
    main()
except SystemExit as stop:
    code = stop.code
else:
    code = 0
"""
#: The same for the baseline: keyring's command line.
KEYRING_PROBE = """
import sys
from keyring.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
"""
REPORT_MODULES = """
modules = sorted(sys.modules)
import json
sys.stdout.flush()
sys.stderr.write("\\n" + json.dumps({"exit": code, "modules": modules}) + "\\n")
"""


@dataclass(frozen=True)
class Pair:
    """One token: its name, its data key's keyring entry and what ``token`` must print."""

    kind: str
    name: str
    entry: str
    expected: str


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line of this script."""
    parser = benchmark_parser(
        "Time `tokenctl token REF` against `python -m keyring get tokenctl inventory-ID`.",
        rounds=15,
    )
    parser.add_argument(
        "--no-oauth",
        action="store_true",
        help="only the static token (no OpenID provider needed)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also write -X importtime and cProfile output of `tokenctl token` to DIR",
    )
    return parser.parse_args(argv)


# -- setting up the tokens ---------------------------------------------------------------


def tokenctl(
    script: Path, env: Mapping[str, str], cwd: Path, *args: str, stdin: str | None = None
) -> str:
    """Run one untimed tokenctl command; its stdout. A failure stops the benchmark."""
    result = subprocess.run(
        (str(script), *args), cwd=cwd, env=dict(env), input=stdin, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise BenchmarkError(
            f"tokenctl {' '.join(args)}: exit status {result.returncode}\n{result.stderr}"
        )
    return result.stdout


def key_entry(script: Path, env: Mapping[str, str], cwd: Path, name: str) -> str:
    """The keyring entry of the data key a token's secret is sealed with (``show --json``)."""
    shown = json.loads(tokenctl(script, env, cwd, "show", name, "--json"))
    secret = shown["token"]["secret"]
    if not secret["stored"] or secret["keyring_entry"] is not None:
        raise BenchmarkError(f"{name}: its secret is not sealed in the inventory")
    entry: str = secret["key_entry"]
    return entry


def add_static(script: Path, env: Mapping[str, str], cwd: Path) -> Pair:
    """``tokenctl add --definition api-key --secret-stdin`` with a random pass code."""
    pass_code = secrets.token_urlsafe(32)
    tokenctl(
        script,
        env,
        cwd,
        "add",
        STATIC_NAME,
        "--definition",
        "api-key",
        "--secret-stdin",
        stdin=pass_code,
    )
    return Pair("static", STATIC_NAME, key_entry(script, env, cwd, STATIC_NAME), pass_code)


def definition_toml(issuer: str) -> str:
    """An OAuth definition for the local provider (endpoints by discovery)."""
    scopes = ", ".join(f'"{scope}"' for scope in SCOPES)
    return (
        f"[definitions.{DEFINITION}]\n"
        'title = "Acme Books (benchmark)"\n'
        'classification = "Accounting"\n'
        'kind = "oauth2"\n\n'
        f"[definitions.{DEFINITION}.oauth2]\n"
        f'issuer = "{issuer}"\n'
        f'client_id = "{PUBLIC_CLIENT_ID}"\n'
        f"scopes = [{scopes}]\n"
    )


def read_login_url(process: subprocess.Popen[bytes], deadline: float) -> str:
    """The authorization URL ``tokenctl add --no-browser`` prints on stderr.

    Reads the pipe with ``os.read``: a buffered reader would take several lines at once
    and leave the selector waiting for data it already holds.
    """
    assert process.stderr is not None
    descriptor = process.stderr.fileno()
    received = b""
    with selectors.DefaultSelector() as selector:
        selector.register(descriptor, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(deadline - time.monotonic()):
                continue
            chunk = os.read(descriptor, 65536)
            if not chunk:
                break
            received += chunk
            for line in received.decode("utf-8", "replace").splitlines():
                if line.startswith("http") and "code_challenge=" in line:
                    return line.strip()
    raise BenchmarkError(
        "tokenctl add printed no login URL:\n" + received.decode("utf-8", "replace")
    )


def add_oauth(
    script: Path,
    env: Mapping[str, str],
    cwd: Path,
    provider: OidcServer,
    secret_service: SecretService,
    workdir: Path,
) -> Pair:
    """A real ``tokenctl add`` with a loopback login, the browser played by the peer."""
    source = workdir / "definitions.toml"
    source.write_text(definition_toml(provider.issuer))
    tokenctl(script, env, cwd, "definitions", "add", "--file", str(source))
    process = subprocess.Popen(
        (str(script), "add", OAUTH_NAME, "--definition", DEFINITION, "--yes", "--no-browser"),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = read_login_url(process, time.monotonic() + LOGIN_URL_TIMEOUT)
        provider.browser_login(url, USER, PASSWORD)  # follows the redirect to tokenctl
        _, stderr = process.communicate(timeout=LOGIN_URL_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if process.returncode != 0:
        raise BenchmarkError(
            f"tokenctl add (OAuth): exit status {process.returncode}\n"
            + stderr.decode("utf-8", "replace")
        )
    entry = key_entry(script, env, cwd, OAUTH_NAME)
    access_token = stored_access_token(secret_service, Path(env[HOME_ENV]), OAUTH_NAME)
    return Pair("OAuth", OAUTH_NAME, entry, access_token)


def stored_access_token(secret_service: SecretService, home: Path, name: str) -> str:
    """The access token sealed for ``name``, opened in this process with tokenctl's inventory.

    That is what ``tokenctl token`` must print; read through the same Secret Service.
    """
    os.environ.update(secret_service.env)
    keyring = OsKeyring()
    inventory = SqliteInventory(
        resolve_paths(None, {HOME_ENV: str(home)}).inventory_file, lambda: keyring
    )
    try:
        stored = inventory.secrets(inventory.resolve(name).number)
    finally:
        inventory.close()
        keyring.close()
    if stored is None or not stored.access_token:
        raise BenchmarkError(f"{name}: no access token is stored")
    return stored.access_token


# -- timing ------------------------------------------------------------------------------


#: The two ways keyring finds its backend: named in ``PYTHON_KEYRING_BACKEND`` (as the peers
#: pin it), or detected by keyring as most users have it (tokenctl remembers its choice).
BACKEND_CHOICES = ("pinned", "detected")


def choice_environment(env: Mapping[str, str], choice: str) -> dict[str, str]:
    """``env`` for one of BACKEND_CHOICES."""
    if choice == "pinned":
        return dict(env)
    return {key: value for key, value in env.items() if key != "PYTHON_KEYRING_BACKEND"}


def check_detected_backend(env: Mapping[str, str], cwd: Path) -> None:
    """Without the pin, keyring must still choose the Secret Service (same backend for both)."""
    result = subprocess.run(
        (sys.executable, "-c", "import keyring; print(type(keyring.get_keyring()).__module__)"),
        cwd=cwd,
        env=choice_environment(env, "detected"),
        capture_output=True,
        text=True,
    )
    if result.stdout.strip() != "keyring.backends.SecretService":
        raise BenchmarkError(
            f"keyring detects {result.stdout.strip() or result.stderr.strip()!r}, not the"
            " Secret Service: the detected cases would compare different backends"
        )


def build_cases(script: Path, pairs: Sequence[Pair], env: Mapping[str, str]) -> list[Case]:
    """For every token and backend choice, the baseline and then ``tokenctl token``."""
    cases: list[Case] = []
    for pair in pairs:
        for choice in BACKEND_CHOICES:
            chosen_env = choice_environment(env, choice)
            label = f"{pair.kind}, {choice} backend"
            cases.append(
                Case(
                    f"baseline: python -m keyring get ({label})",
                    (sys.executable, "-m", "keyring", "get", "tokenctl", pair.entry),
                    chosen_env,
                )
            )
            cases.append(
                Case(f"tokenctl token ({label})", (str(script), "token", pair.name), chosen_env)
            )
    return cases


def is_data_key_entry(text: str) -> bool:
    """Whether ``text`` is a data key entry as tokenctl writes it (``{"format": 1, ...}``)."""
    try:
        entry = json.loads(text)
    except ValueError:
        return False
    return isinstance(entry, dict) and entry.get("format") == 1 and bool(entry.get("keys"))


def check_outputs(cases: Sequence[Case], pairs: Sequence[Pair], cwd: Path) -> None:
    """Untimed: each command prints what it should (so the timings measure real work).

    ``token`` the token's secret; ``keyring get`` the data key entry.
    """
    expected = [pair for pair in pairs for _ in BACKEND_CHOICES]
    for pair, (baseline, token) in zip(
        expected, zip(cases[::2], cases[1::2], strict=True), strict=True
    ):
        printed = token.run(cwd).stdout.decode()
        if printed != pair.expected + "\n":
            raise BenchmarkError(f"{token.label}: did not print the expected secret")
        if not is_data_key_entry(baseline.run(cwd).stdout.decode()):
            raise BenchmarkError(f"{baseline.label}: did not print the data key entry")


def imported_modules(probe: str, env: Mapping[str, str], cwd: Path, *args: str) -> list[str]:
    """Every module a probe (TOKEN_PROBE, KEYRING_PROBE) has imported at its end."""
    result = subprocess.run(
        (sys.executable, "-c", probe + REPORT_MODULES, *args),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
    )
    try:
        report = json.loads(result.stderr.decode("utf-8", "replace").splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchmarkError(
            "an import probe printed no module list:\n" + result.stderr.decode("utf-8", "replace")
        ) from None
    if report["exit"] not in (0, None):
        raise BenchmarkError(f"an import probe exited with {report['exit']}")
    modules: list[str] = report["modules"]
    return modules


def write_profiles(env: Mapping[str, str], cwd: Path, directory: Path, name: str) -> None:
    """``-X importtime`` and cProfile output of ``python -m tokenctl token NAME`` in DIR."""
    directory.mkdir(parents=True, exist_ok=True)
    imports = directory / "token.importtime.txt"
    profile = directory / "token.prof"
    with imports.open("wb") as err:
        subprocess.run(
            (sys.executable, "-X", "importtime", "-m", "tokenctl", "token", name),
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.DEVNULL,
            stderr=err,
            check=True,
        )
    subprocess.run(
        (sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "tokenctl", "token", name),
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        check=True,
    )
    print(f"profiles  {imports}, {profile}")


def print_table(timings: Sequence[Timing]) -> None:
    """Case, median, min, and each ``token`` median as a multiple of its baseline's."""
    width = max(len(timing.case.label) for timing in timings)
    print(f"{'case':<{width}}  {'median s':>9}  {'min s':>7}  {'x baseline':>10}")
    print(f"{'-' * width}  {'-' * 9}  {'-' * 7}  {'-' * 10}")
    for index, timing in enumerate(timings):
        baseline = timings[index - index % 2]
        ratio = timing.median / baseline.median
        print(
            f"{timing.case.label:<{width}}  {timing.median:>9.3f}  {timing.best:>7.3f}"
            f"  {ratio:>10.2f}"
        )


def start_keyring(stack: ExitStack, workdir: Path) -> SecretService:
    """A private Secret Service that ``stack`` stops."""
    try:
        secret_service = start_secret_service(workdir / "secret-service")
    except (SecretServiceUnavailable, SecretServiceError) as error:
        raise BenchmarkError(f"no Secret Service: {error}") from None
    stack.callback(secret_service.stop)
    return secret_service


def start_provider(stack: ExitStack, workdir: Path) -> OidcServer:
    """The local OpenID provider, which ``stack`` stops."""
    if not is_installed():
        raise BenchmarkError(
            "the OpenID provider is not installed (npm ci in tests/peers/oidc); or pass --no-oauth"
        )
    try:
        provider = start_oidc_provider({"rotate_refresh_token": True}, workdir / "oidc")
    except OidcPeerError as error:
        raise BenchmarkError(f"no OpenID provider: {error}") from None
    stack.callback(provider.stop)
    return provider


def ratio_checks(timings: Sequence[Timing]) -> list[Check]:
    """Each ``tokenctl token`` median against its own baseline's, at most RATIO_LIMIT."""
    checks = []
    for baseline, token in zip(timings[::2], timings[1::2], strict=True):
        ratio = token.median / baseline.median
        checks.append(
            Check(
                passed(ratio <= RATIO_LIMIT),
                f"{token.case.label} <= {RATIO_LIMIT:.1f}x keyring get: median"
                f" {token.median:.3f} s / {baseline.median:.3f} s = {ratio:.2f}x",
            )
        )
    return checks


def run(options: argparse.Namespace) -> int:
    """Start the peers, add the tokens, time the cases, check the bars, print the report."""
    script = console_script()
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenctl-bench-")))
        print(f"python    {sys.executable} ({platform.python_version()})")
        print(f"tokenctl  {script} (console script, as users run it)")
        secret_service = start_keyring(stack, workdir)
        env = {
            **child_environment(workdir / "home", workdir / "pycache"),
            **secret_service.env,
        }
        pairs = [add_static(script, env, workdir)]
        provider: OidcServer | None = None
        if not options.no_oauth:
            provider = start_provider(stack, workdir)
            pairs.append(add_oauth(script, env, workdir, provider, secret_service, workdir))
            provider.reset_stats()
        print(
            "tokens    "
            + ", ".join(f"{pair.kind} {pair.name!r}" for pair in pairs)
            + f"; data key entry {pairs[0].entry}"
        )
        print("keyring   private gnome-keyring Secret Service, python keyring's SecretService")

        check_detected_backend(env, workdir)
        cases = build_cases(script, pairs, env)
        print(f"timing    {len(cases)} cases x {options.rounds + 1} runs ...\n", flush=True)
        check_outputs(cases, pairs, workdir)
        timings = measure(cases, options.rounds, workdir)
        print_table(timings)
        print()

        if provider is not None:
            refreshes = provider.stats().get("refresh_served", 0)
            if refreshes:
                raise BenchmarkError(
                    f"tokenctl token refreshed the OAuth token {refreshes} times: the timings"
                    " measure refreshes, not the keyring read"
                )
        keyring_modules = imported_modules(
            KEYRING_PROBE, env, workdir, "get", "tokenctl", pairs[0].entry
        )
        token_modules = imported_modules(TOKEN_PROBE, env, workdir, "token", pairs[0].name)
        beyond = packages_beyond(token_modules, keyring_modules)
        print(
            f"tokenctl token imports {len(token_modules)} modules, keyring get"
            f" {len(keyring_modules)}; packages beyond keyring's: {', '.join(beyond) or 'none'}"
        )
        if options.profile is not None:
            write_profiles(env, workdir, options.profile, pairs[0].name)
        print()

        checks = ratio_checks(timings)
        if options.no_oauth:
            checks.append(Check("SKIP", "tokenctl token (OAuth): --no-oauth"))
    return report(checks)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    return entry(parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
