"""The team store chosen in config.toml, through real `tokenctl` processes against a real
OpenBao dev server: the commands, two machines, the quick `token` path, policies,
`store status` / `store use`, and no OS keyring needed."""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

import pytest

from tests.peers.openbao import OpenBao
from tests.proc import Proc, tokenctl
from tests.test_team_store import _token_with_policy

#: No OS keyring at all: the team store must never ask for one.
NO_KEYRING = "keyring.backends.fail.Keyring"


def _env(bao: OpenBao, home: Path, token: str | None = None) -> dict[str, str]:
    """A clean environment: the store token in BAO_TOKEN, a HOME of its own, no keyring."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BAO_", "VAULT_", "TOKENCTL_"))
    }
    env.update(
        HOME=str(home),
        BAO_TOKEN=token or bao.root_token,
        PYTHON_KEYRING_BACKEND=NO_KEYRING,
    )
    return env


def _team_config(home: Path, bao: OpenBao, mount: str, path: str = "acme") -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(
        f'unit = "machine"\n\n[store]\nkind = "openbao"\naddress = "{bao.address}"\n'
        f'mount = "{mount}"\npath = "{path}"\n',
        encoding="utf-8",
    )
    home.chmod(0o700)
    (home / "config.toml").chmod(0o600)


class Machine:
    """One machine: a tokenctl home of its own and a HOME of its own."""

    def __init__(self, tmp: Path, name: str, bao: OpenBao, token: str | None = None) -> None:
        self.home = tmp / name / "tokenctl"
        self.env = _env(bao, tmp / name, token)

    def __call__(self, *args: str, input: str | None = None) -> Proc:
        return tokenctl(*args, home=self.home, env=self.env, input=input)


@pytest.fixture
def machines(tmp_path, openbao, openbao_kv):  # type: ignore[no-untyped-def]
    made = []

    def machine(name: str, token: str | None = None) -> Machine:
        found = Machine(tmp_path, name, openbao, token)
        _team_config(found.home, openbao, openbao_kv)
        made.append(found)
        return found

    return machine


def test_commands_on_the_team_store_chosen_in_config(machines):
    laptop, cron = machines("laptop"), machines("cron")
    added = laptop("add", "acme", "--definition", "api-key", "--secret-stdin", input="p4ss")
    assert added.exit_code == 0, added.stderr
    # The other machine sees it at once.
    listed = cron("list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [t["name"] for t in listed.json()["tokens"]] == ["acme"]
    assert cron("show", "acme").exit_code == 0
    assert cron("token", "acme").stdout == "p4ss\n"
    renewed = cron("renew", "acme", "--secret-stdin", input="n3w")
    assert renewed.exit_code == 0, renewed.stderr
    assert laptop("token", "acme").stdout == "n3w\n"
    ran = laptop(
        "exec",
        "acme",
        "--env",
        "API_TOKEN",
        "--",
        sys.executable,
        "-c",
        "import os; print(os.environ['API_TOKEN'])",
    )
    assert (ran.exit_code, ran.stdout) == (0, "n3w\n"), ran.stderr
    deleted = laptop("delete", "acme", "--yes")
    assert deleted.exit_code == 0, deleted.stderr
    gone = cron("token", "acme")
    assert gone.exit_code == 3, gone.stderr
    for machine in (laptop, cron):
        assert not (machine.home / "inventory.sqlite3").exists()


def test_quick_token_path_never_answers_from_a_local_file_on_the_team_store(machines, real_keyring):
    laptop = machines("laptop")
    config = laptop.home / "config.toml"
    team_config = config.read_text(encoding="utf-8")
    # Before the team store: a local token of the same name, served by the quick path.
    config.write_text('unit = "machine"\n', encoding="utf-8")
    local_env = {**real_keyring.child_env(), "HOME": laptop.env["HOME"]}
    stale = tokenctl(
        "add",
        "acme",
        "--definition",
        "api-key",
        "--secret-stdin",
        home=laptop.home,
        env=local_env,
        input="stale",
    )
    assert stale.exit_code == 0, stale.stderr
    assert tokenctl("token", "acme", home=laptop.home, env=local_env).stdout == "stale\n"
    # Now config.toml chooses the team store, where acme holds another value.
    config.write_text(team_config, encoding="utf-8")
    assert (
        laptop("add", "acme", "--definition", "api-key", "--secret-stdin", input="team").exit_code
        == 0
    )
    assert (laptop.home / "inventory.sqlite3").exists()  # the old file is still there
    # With a keyring that could open the old file's secret: still the team store's value.
    served = tokenctl(
        "token", "acme", home=laptop.home, env={**local_env, "BAO_TOKEN": laptop.env["BAO_TOKEN"]}
    )
    assert served.exit_code == 0, served.stderr
    assert served.stdout == "team\n"


def test_records_only_identity_lists_and_is_refused_secrets(machines, openbao, openbao_kv):
    machines("laptop")("add", "acme", "--definition", "api-key", "--secret-stdin", input="p")
    policy = "\n".join(
        f'path "{openbao_kv}/data/acme/{part}" {{ capabilities = ["read"] }}'
        for part in ("meta", "counter", "records/*", "names/*", "codes/*", "history/*")
    )
    ci = machines("ci", _token_with_policy(openbao, f"ci-{openbao_kv}", policy))
    listed = ci("list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [t["name"] for t in listed.json()["tokens"]] == ["acme"]
    refused = ci("token", "acme")
    assert refused.exit_code == 4
    assert "this identity may not read secrets at" in refused.stderr
    status = ci("store", "status", "--json")
    assert status.exit_code == 0, status.stderr
    may = status.json()["store"]["may"]
    assert may == {
        "list_records": False,
        "read_records": True,
        "read_secrets": False,
        "read_secrets_of": [],
        "write": False,
    }


def test_store_status_of_the_team_store(machines, openbao, openbao_kv):
    laptop = machines("laptop")
    status = laptop("store", "status", "--json")
    assert status.exit_code == 0, status.stderr
    facts = status.json()["store"]
    assert facts["kind"] == "openbao"
    assert facts["address"] == openbao.address
    assert (facts["mount"], facts["path"]) == (openbao_kv, "acme")
    assert facts["sealed"] is False and facts["version"]
    assert "root" in facts["identity"]["policies"]
    assert facts["may"] == {
        "list_records": True,
        "read_records": True,
        "read_secrets": True,
        "read_secrets_of": [],
        "write": True,
    }
    assert facts["problem"] is None
    text = laptop("store", "status")
    assert text.exit_code == 0
    assert f"address       {openbao.address}" in text.stdout
    assert "read secrets  yes" in text.stdout


def test_store_status_of_the_local_store(tmp_path, openbao):
    home = tmp_path / "tokenctl"
    status = tokenctl("store", "status", "--json", home=home, env=_env(openbao, tmp_path))
    assert status.exit_code == 0, status.stderr
    assert status.json()["store"]["kind"] == "local"


def test_store_use_writes_config_after_checking_the_server(tmp_path, openbao, openbao_kv):
    home = tmp_path / "tokenctl"
    home.mkdir()
    env = _env(openbao, tmp_path)
    (home / "config.toml").write_text('unit = "cron-host"\n', encoding="utf-8")
    wrong_mount = tokenctl(
        "store",
        "use",
        "openbao",
        "--address",
        openbao.address,
        "--mount",
        "no-such-mount",
        home=home,
        env=env,
    )
    assert wrong_mount.exit_code == 4, wrong_mount.stderr
    assert "no secrets engine mounted at no-such-mount" in wrong_mount.stderr
    unreachable = tokenctl(
        "store",
        "use",
        "openbao",
        "--address",
        "http://127.0.0.1:9",
        "--mount",
        openbao_kv,
        home=home,
        env=env,
    )
    assert unreachable.exit_code == 4, unreachable.stderr
    assert "does not answer" in unreachable.stderr
    assert (home / "config.toml").read_text(encoding="utf-8") == 'unit = "cron-host"\n'
    used = tokenctl(
        "store",
        "use",
        "openbao",
        "--address",
        openbao.address,
        "--mount",
        openbao_kv,
        "--path",
        "team-a",
        home=home,
        env=env,
    )
    assert used.exit_code == 0, used.stderr
    written = tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))
    assert written == {
        "unit": "cron-host",
        "store": {
            "kind": "openbao",
            "address": openbao.address,
            "mount": openbao_kv,
            "path": "team-a",
        },
    }
    added = tokenctl(
        "add",
        "acme",
        "--definition",
        "api-key",
        "--secret-stdin",
        home=home,
        env=env,
        input="p",
    )
    assert added.exit_code == 0, added.stderr
    back = tokenctl("store", "use", "local", home=home, env=env)
    assert back.exit_code == 0, back.stderr
    assert (
        tomllib.loads((home / "config.toml").read_text(encoding="utf-8"))["store"]["kind"]
        == "local"
    )
    assert (
        tokenctl("store", "status", "--json", home=home, env=env).json()["store"]["kind"] == "local"
    )


def test_store_settings_refused_clearly(tmp_path, openbao, openbao_kv):
    home = tmp_path / "tokenctl"
    home.mkdir()
    env = _env(openbao, tmp_path)
    config = home / "config.toml"
    config.write_text('[store]\nkind = "openbao"\nauth = "approle"\n', encoding="utf-8")
    refused = tokenctl("list", home=home, env=env)
    assert refused.exit_code != 0
    assert "store.auth = 'approle' needs store.role (the AppRole role id)" in refused.stderr
    config.write_text(
        '[store]\nkind = "openbao"\naddress = "http://bao.example.com:8200"\n', encoding="utf-8"
    )
    plain = tokenctl("list", home=home, env=env)
    assert "plain http" in plain.stderr and plain.exit_code != 0
    config.write_text(f'[store]\nkind = "openbao"\nmount = "{openbao_kv}"\n', encoding="utf-8")
    no_token_env = {k: v for k, v in env.items() if k != "BAO_TOKEN"}
    no_token = tokenctl("list", home=home, env={**no_token_env, "BAO_ADDR": openbao.address})
    assert no_token.exit_code == 4 and "no store token" in no_token.stderr
    # The token helper's file is read when no variable names a token.
    (tmp_path / ".vault-token").write_text(openbao.root_token + "\n", encoding="utf-8")
    helper = tokenctl("list", home=home, env={**no_token_env, "BAO_ADDR": openbao.address})
    assert helper.exit_code == 0, helper.stderr


def test_doctor_reports_the_team_store(machines, openbao):
    laptop = machines("laptop")
    doctor = laptop("doctor", "--json")
    assert doctor.exit_code == 0, doctor.stderr + doctor.stdout
    checks = {c["name"]: c for c in doctor.json()["doctor"]["checks"]}
    assert "keyring" not in checks and "data key" not in checks
    assert checks["store"]["ok"] and openbao.address in checks["store"]["detail"]
    assert checks["inventory"]["ok"]


def test_a_sealed_team_store_is_named_by_status_and_doctor(machines, openbao):
    laptop = machines("laptop")
    with openbao.sealed():
        status = laptop("store", "status")
        doctor = laptop("doctor", "--json")
    assert status.exit_code == 4
    assert f"the team store {openbao.address} is sealed" in status.stderr
    assert doctor.exit_code == 4, doctor.stdout
    store = {c["name"]: c for c in doctor.json()["doctor"]["checks"]}["store"]
    assert not store["ok"] and "is sealed" in store["detail"]
    assert laptop("store", "status").exit_code == 0  # unsealed again


def test_key_commands_say_the_team_store_has_no_data_key(machines):
    refused = machines("laptop")("key", "status")
    assert refused.exit_code == 2, refused.stderr
    assert "the team store" in refused.stderr and "OpenBao encrypts" in refused.stderr


def test_store_use_refuses_an_identity_that_may_not_read_the_path(tmp_path, openbao, openbao_kv):
    other = _token_with_policy(
        openbao,
        f"other-{openbao_kv}",
        f'path "{openbao_kv}/data/other/*" {{ capabilities = ["read"] }}',
    )
    home = tmp_path / "tokenctl"
    env = _env(openbao, tmp_path, other)
    refused = tokenctl(
        "store",
        "use",
        "openbao",
        "--address",
        openbao.address,
        "--mount",
        openbao_kv,
        "--path",
        "acme",
        home=home,
        env=env,
    )
    assert refused.exit_code == 4, refused.stderr
    assert "this identity may not read the inventory" in refused.stderr
    assert not (home / "config.toml").exists()
    mixed = tokenctl("store", "use", "local", "--mount", "kv", home=home, env=env)
    assert mixed.exit_code == 2 and "--address, --mount, --path and the login" in mixed.stderr


def test_removing_a_definition_on_one_machine_keeps_the_teams_client_secret(machines, openbao):
    laptop, cron = machines("laptop"), machines("cron")
    books = (
        '[definitions.books]\ntitle = "Books"\nkind = "oauth2"\n[definitions.books.oauth2]\n'
        'authorization_endpoint = "https://books.example/a"\n'
        'token_endpoint = "https://books.example/t"\n'
    )
    for machine in (laptop, cron):
        (machine.home / "definitions.toml").write_text(books)
    configured = laptop(
        "definitions", "configure", "books", "--client-id", "app", "--client-secret-stdin",
        input="team-client-secret",
    )  # fmt: skip
    assert configured.exit_code == 0, configured.stderr
    assert laptop("definitions", "remove", "books").exit_code == 0
    # The cron host's definition still names that client: its secret is still there.
    from tokenctl.store.openbao.inventory import OpenBaoInventory

    config = (cron.home / "config.toml").read_text()
    mount = config.split('mount = "')[1].split('"')[0]
    path = config.split('path = "')[1].split('"')[0]
    inventory = OpenBaoInventory(openbao.address, openbao.root_token, mount, path)
    try:
        assert inventory.client_secret("books", "app") == "team-client-secret"
    finally:
        inventory.close()


def test_an_unreachable_team_store_is_exit_4_naming_the_address(tmp_path, openbao, openbao_kv):
    from tests.peers.openbao import free_ports

    laptop = Machine(tmp_path, "laptop", openbao)
    dead = f"http://127.0.0.1:{free_ports(1)[0]}"
    _team_config(laptop.home, openbao, openbao_kv)
    config = laptop.home / "config.toml"
    config.write_text(config.read_text().replace(openbao.address, dead), encoding="utf-8")
    listed = laptop("list")
    assert listed.exit_code == 4, listed.stderr
    assert f"the team store {dead} does not answer (Connection refused)" in listed.stderr
    assert f"{openbao_kv}/acme/" in listed.stderr  # the path it could not read
    assert "Traceback" not in listed.stderr


def test_a_sealed_team_store_is_exit_4_for_every_command(machines, openbao, openbao_kv):
    laptop = machines("laptop")
    assert (
        laptop("add", "acme", "--definition", "api-key", "--secret-stdin", input="p").exit_code == 0
    )
    with openbao.sealed():
        results = [laptop("list"), laptop("token", "acme")]
    for result in results:
        assert result.exit_code == 4, result.stderr
        assert f"the team store {openbao.address} is sealed" in result.stderr
        assert f"could not read {openbao_kv}/acme/" in result.stderr
        assert "bao operator unseal" in result.stderr
    assert laptop("token", "acme").stdout == "p\n"  # unsealed again, nothing lost


def test_store_use_refuses_empty_and_plain_http_options_as_usage_errors(tmp_path, openbao):
    home = tmp_path / "tokenctl"
    home.mkdir()
    env = _env(openbao, tmp_path)
    for args, said in (
        (("--mount", ""), "the team store mount '' is not a path"),
        (("--path", ""), "the team store path '' is not a path"),
        (("--address", "http://bao.example.com:8200"), "--address: the team store address"),
    ):
        place = ("--address", openbao.address) if args[0] != "--address" else ()
        result = tokenctl("store", "use", "openbao", *place, *args, home=home, env=env)
        assert result.exit_code == 2, (args, result.stderr)
        assert said in result.stderr and "Traceback" not in result.stderr
    assert not (home / "config.toml").exists()  # nothing written
    local = tokenctl("store", "use", "local", "--mount", "", home=home, env=env)
    assert local.exit_code == 2 and "choose a team store" in local.stderr
