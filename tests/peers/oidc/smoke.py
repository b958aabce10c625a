"""Smoke test of the oidc-provider peer with an independent client (authlib).

Run:  python tests/peers/oidc/smoke.py   (needs authlib + httpx2, and
`npm ci` done in tests/peers/oidc).  It is not collected by pytest (the file
name does not start with test_); it proves the peer behaves as the test suite
expects and prints timings.
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx2
import oidc_server as peer
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc7636 import create_s256_code_challenge

T0 = time.monotonic()


def step(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.2f}s] {msg}", flush=True)


def check(cond: object, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return dict(json.loads(base64.urlsafe_b64decode(payload)))


def code_flow(
    srv: peer.OidcServer,
    meta: dict[str, Any],
    client: OAuth2Client,
    *,
    scope: str,
    user: str = "alice",
    approve: bool = True,
    grant_scopes: list[str] | None = None,
    redirect_port: int = 49321,
) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
    redirect_uri = f"http://127.0.0.1:{redirect_port}/callback"
    verifier = generate_token(64)
    state = generate_token(16)
    url, _ = client.create_authorization_url(
        meta["authorization_endpoint"],
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    final = srv.browser_login(
        url,
        user,
        peer.DEFAULT_USERS[user]["password"],
        approve=approve,
        follow_to_callback=False,
        grant_scopes=grant_scopes,
    )
    check(final.startswith(redirect_uri), f"redirected to {final}")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(final).query)
    check(q.get("state") == [state], f"state mismatch {q}")
    check(q.get("iss") == [srv.issuer], f"iss param missing or wrong: {q}")
    if "code" not in q:
        return None, q
    token = client.fetch_token(
        meta["token_endpoint"],
        grant_type="authorization_code",
        code=q["code"][0],
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )
    return dict(token), q


def run_server(
    config: dict[str, Any] | None, directory: Path, checks: Callable[[peer.OidcServer], None]
) -> None:
    """Start a provider with ``config``, run ``checks`` on it (its log on failure), stop it."""
    started = time.monotonic()
    srv = peer.start_oidc_provider(config, directory)
    step(f"started {srv.issuer} in {time.monotonic() - started:.2f}s")
    try:
        checks(srv)
    except BaseException:
        print(srv.logs()[-6000:], file=sys.stderr)
        raise
    finally:
        srv.stop()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_server(None, Path(tmp) / "a", run_default)
        cfg = {
            "rotate_refresh_token": False,
            "refresh_token_policy": "always",
            "access_token_ttl": 2,
            "users": {
                "carol": {"password": "pw", "deny_scopes": ["invoices:write"]},
            },
            "device_slow_down": True,
            "device_slow_down_increment": 1,
        }
        run_server(cfg, Path(tmp) / "b", run_custom)
    step("ALL OK")


def run_default(srv: peer.OidcServer) -> None:
    meta = srv.metadata()
    step(
        "discovery: "
        + json.dumps(
            {
                k: meta.get(k)
                for k in (
                    "issuer",
                    "authorization_response_iss_parameter_supported",
                    "code_challenge_methods_supported",
                    "grant_types_supported",
                    "token_endpoint_auth_methods_supported",
                    "scopes_supported",
                    "device_authorization_endpoint",
                    "introspection_endpoint",
                    "revocation_endpoint",
                    "end_session_endpoint",
                )
            }
        )
    )
    check(meta["issuer"] == srv.issuer, "issuer")
    check(meta["authorization_response_iss_parameter_supported"] is True, "iss param")

    # ---- public client, PKCE, loopback redirect on an arbitrary port
    pub = OAuth2Client(peer.PUBLIC_CLIENT_ID, token_endpoint_auth_method="none")
    t = time.monotonic()
    tok, _ = code_flow(
        srv, meta, pub, scope="openid offline_access invoices:read", redirect_port=51234
    )
    step(
        f"public code+PKCE flow in {time.monotonic() - t:.3f}s: "
        f"keys={sorted(tok)} scope={tok['scope']!r}"
    )
    check(tok and {"access_token", "refresh_token", "id_token", "scope"} <= set(tok), "tokens")
    idt = jwt_claims(tok["id_token"])
    check(idt["sub"] == "alice" and idt["aud"] == peer.PUBLIC_CLIENT_ID, f"id_token {idt}")
    check("invoices:read" in tok["scope"].split(), "custom scope granted")

    # other port works too
    tok_b, _ = code_flow(srv, meta, pub, scope="openid", redirect_port=60001)
    check("refresh_token" not in tok_b, "no RT without offline_access")
    step(f"without offline_access: keys={sorted(tok_b)}")

    # userinfo with the AT
    r = httpx2.get(
        meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {tok['access_token']}"}
    )
    step(f"userinfo {r.status_code} {r.text}")
    check(r.status_code == 200 and r.json()["sub"] == "alice", "userinfo")

    # ---- refresh rotates (default config: rotate_refresh_token true)
    t = time.monotonic()
    rt1 = tok["refresh_token"]
    new = pub.refresh_token(meta["token_endpoint"], refresh_token=rt1)
    step(
        f"refresh in {time.monotonic() - t:.3f}s: "
        f"rotated={new['refresh_token'] != rt1} scope={new['scope']!r}"
    )
    check(new["refresh_token"] != rt1, "rotation")
    check(new["scope"] == tok["scope"], "scope kept on refresh")
    # re-use of the rotated RT -> invalid_grant and the whole grant is revoked
    r = httpx2.post(
        meta["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": rt1,
            "client_id": peer.PUBLIC_CLIENT_ID,
        },
    )
    step(f"reuse of rotated RT: {r.status_code} {r.text}")
    check(r.status_code == 400 and r.json()["error"] == "invalid_grant", "reuse")
    r = httpx2.post(
        meta["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": new["refresh_token"],
            "client_id": peer.PUBLIC_CLIENT_ID,
        },
    )
    step(f"newest RT after reuse detection: {r.status_code} {r.json()['error']}")
    check(r.status_code == 400 and r.json()["error"] == "invalid_grant", "grant revoked on reuse")

    # ---- confidential clients
    basic = OAuth2Client(
        peer.BASIC_CLIENT_ID,
        peer.BASIC_CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_basic",
    )
    tok_basic, _ = code_flow(srv, meta, basic, scope="openid offline_access email", user="bob")
    step(f"basic client: keys={sorted(tok_basic)} scope={tok_basic['scope']!r}")
    check("refresh_token" in tok_basic, "basic RT")
    post = OAuth2Client(
        peer.POST_CLIENT_ID,
        peer.POST_CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_post",
    )
    tok_post, _ = code_flow(srv, meta, post, scope="openid offline_access profile invoices:write")
    step(f"post client: keys={sorted(tok_post)} scope={tok_post['scope']!r}")
    new_post = post.refresh_token(meta["token_endpoint"], refresh_token=tok_post["refresh_token"])
    step(f"post refresh rotated={new_post['refresh_token'] != tok_post['refresh_token']}")
    # wrong secret
    r = httpx2.post(
        meta["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": new_post["refresh_token"],
            "client_id": peer.POST_CLIENT_ID,
            "client_secret": "nope",
        },
    )
    step(f"wrong secret: {r.status_code} {r.json()}")
    check(r.status_code == 401 and r.json()["error"] == "invalid_client", "invalid_client")

    # client credentials (confidential)
    cc = basic.fetch_token(
        meta["token_endpoint"], grant_type="client_credentials", scope="invoices:read"
    )
    step(f"client_credentials: {dict(cc)}")

    # ---- introspection (confidential basic client) + revocation
    auth = (peer.BASIC_CLIENT_ID, peer.BASIC_CLIENT_SECRET)
    r = httpx2.post(
        meta["introspection_endpoint"], data={"token": tok_post["access_token"]}, auth=auth
    )
    step(f"introspect (post client's rotated-out AT, still valid): {r.json()}")
    at = new_post["access_token"]
    r = httpx2.post(meta["introspection_endpoint"], data={"token": at}, auth=auth)
    intro = r.json()
    step(f"introspect: {intro}")
    check(intro["active"] is True and intro["sub"] == "alice", "introspection active")
    r = httpx2.post(
        meta["revocation_endpoint"],
        data={
            "token": at,
            "token_type_hint": "access_token",
            "client_id": peer.POST_CLIENT_ID,
            "client_secret": peer.POST_CLIENT_SECRET,
        },
    )
    step(f"revoke AT: {r.status_code}")
    check(r.status_code == 200, "revocation")
    r = httpx2.post(meta["introspection_endpoint"], data={"token": at}, auth=auth)
    check(r.json() == {"active": False}, f"after revocation: {r.json()}")
    r = httpx2.post(
        meta["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": new_post["refresh_token"],
            "client_id": peer.POST_CLIENT_ID,
            "client_secret": peer.POST_CLIENT_SECRET,
        },
    )
    step(f"RT after revoking its AT: {r.status_code} {r.json().get('error')}")

    # revoke the RT of the basic client -> grant gone
    r = httpx2.post(
        meta["revocation_endpoint"],
        data={"token": tok_basic["refresh_token"], "token_type_hint": "refresh_token"},
        auth=auth,
    )
    r2 = httpx2.post(
        meta["introspection_endpoint"], data={"token": tok_basic["access_token"]}, auth=auth
    )
    step(f"revoke RT {r.status_code}; its AT afterwards: {r2.json()}")
    check(r2.json() == {"active": False}, "RT revocation revokes AT")

    # ---- denied consent
    tok_d, q = code_flow(srv, meta, pub, scope="openid offline_access", approve=False)
    step(f"denied consent -> {q}")
    check(tok_d is None and q["error"] == ["access_denied"], "access_denied")

    # ---- partial consent (user unticks a scope)
    tok_p, _ = code_flow(
        srv,
        meta,
        pub,
        scope="openid offline_access invoices:read invoices:write",
        grant_scopes=["offline_access", "invoices:read"],
    )
    step(f"partial consent scope={tok_p['scope']!r}")
    check(
        "invoices:write" not in tok_p["scope"].split()
        and "invoices:read" in tok_p["scope"].split(),
        "partial consent",
    )

    # ---- wrong password
    try:
        url, _ = pub.create_authorization_url(
            meta["authorization_endpoint"],
            redirect_uri="http://127.0.0.1:5000/callback",
            scope="openid",
            code_challenge=create_s256_code_challenge("x" * 50),
            code_challenge_method="S256",
        )
        srv.browser_login(url, "alice", "wrong")
        raise AssertionError("wrong password accepted")
    except peer.LoginFailedError as e:
        step(f"wrong password -> {e}")

    # ---- admin revoke of a user's grants
    tok_r, _ = code_flow(srv, meta, pub, scope="openid offline_access", user="bob")
    grants = srv.grants("bob")
    step(f"bob grants: {grants}")
    revoked = srv.revoke_user_grants("bob")
    step(f"revoked {revoked}")
    r = httpx2.post(
        meta["token_endpoint"],
        data={
            "grant_type": "refresh_token",
            "refresh_token": tok_r["refresh_token"],
            "client_id": peer.PUBLIC_CLIENT_ID,
        },
    )
    check(r.status_code == 400 and r.json()["error"] == "invalid_grant", f"admin revoke: {r.text}")
    r = httpx2.get(
        meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {tok_r['access_token']}"}
    )
    step(f"userinfo after admin revoke: {r.status_code} {r.headers.get('www-authenticate')}")

    # ---- device flow
    t = time.monotonic()
    r = httpx2.post(
        meta["device_authorization_endpoint"],
        data={"client_id": peer.PUBLIC_CLIENT_ID, "scope": "openid offline_access invoices:read"},
    )
    da = r.json()
    step(f"device authorization: {da}")
    r = httpx2.post(
        meta["token_endpoint"],
        data={
            "grant_type": peer.DEVICE_CODE_GRANT,
            "device_code": da["device_code"],
            "client_id": peer.PUBLIC_CLIENT_ID,
        },
    )
    step(f"poll before approval: {r.status_code} {r.json()}")
    page = srv.device_approve(da["user_code"], "alice", "alice-password")
    step(f"device approve -> {page}")
    r = httpx2.post(
        meta["token_endpoint"],
        data={
            "grant_type": peer.DEVICE_CODE_GRANT,
            "device_code": da["device_code"],
            "client_id": peer.PUBLIC_CLIENT_ID,
        },
    )
    dtok = r.json()
    step(
        f"device token in {time.monotonic() - t:.3f}s: {r.status_code} "
        f"keys={sorted(dtok)} scope={dtok.get('scope')!r}"
    )
    check("refresh_token" in dtok and "id_token" in dtok, "device tokens")

    # device denied
    da = httpx2.post(
        meta["device_authorization_endpoint"],
        data={"client_id": peer.PUBLIC_CLIENT_ID, "scope": "openid"},
    ).json()
    srv.device_approve(da["user_code"], "bob", "bob-password", approve=False)
    r = httpx2.post(
        meta["token_endpoint"],
        data={
            "grant_type": peer.DEVICE_CODE_GRANT,
            "device_code": da["device_code"],
            "client_id": peer.PUBLIC_CLIENT_ID,
        },
    )
    step(f"device denied poll: {r.status_code} {r.json()}")
    check(r.json()["error"] == "access_denied", "device denied")

    # device with confidential client
    da = httpx2.post(
        meta["device_authorization_endpoint"], data={"scope": "openid offline_access"}, auth=auth
    ).json()
    srv.device_approve(da["user_code"], "bob", "bob-password")
    r = httpx2.post(
        meta["token_endpoint"],
        data={"grant_type": peer.DEVICE_CODE_GRANT, "device_code": da["device_code"]},
        auth=auth,
    )
    step(f"device (basic client): {r.status_code} keys={sorted(r.json())}")
    check(r.status_code == 200, "device basic")

    # logout endpoint present
    step(f"stats: {srv.stats()}")


def run_custom(srv: peer.OidcServer) -> None:
    meta = srv.metadata()
    pub = OAuth2Client(peer.PUBLIC_CLIENT_ID, token_endpoint_auth_method="none")
    redirect_uri = "http://127.0.0.1:40000/callback"
    verifier = generate_token(64)
    url, _ = pub.create_authorization_url(
        meta["authorization_endpoint"],
        redirect_uri=redirect_uri,
        scope="openid invoices:read invoices:write",
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    final = srv.browser_login(url, "carol", "pw", follow_to_callback=False)
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(final).query)["code"][0]
    tok = pub.fetch_token(
        meta["token_endpoint"],
        grant_type="authorization_code",
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
    )
    step(
        f"carol (deny_scopes invoices:write), no offline_access, policy always: keys={sorted(tok)} "
        f"scope={tok['scope']!r} expires_in={tok['expires_in']}"
    )
    check("refresh_token" in tok, "RT always")
    check(tok["scope"].split() == ["openid", "invoices:read"], "deny_scopes")
    new = pub.refresh_token(meta["token_endpoint"], refresh_token=tok["refresh_token"])
    check(new["refresh_token"] == tok["refresh_token"], "no rotation")
    step(f"no rotation: same RT returned={new['refresh_token'] == tok['refresh_token']}")
    new2 = pub.refresh_token(meta["token_endpoint"], refresh_token=tok["refresh_token"])
    check(new2["access_token"] != new["access_token"], "RT reusable")
    # take a scope away at the provider
    srv.reject_scope("invoices:read", user="carol")
    new3 = pub.refresh_token(meta["token_endpoint"], refresh_token=tok["refresh_token"])
    step(f"after reject_scope invoices:read, refresh scope={new3['scope']!r}")
    # short AT TTL
    time.sleep(2.2)
    auth = (peer.BASIC_CLIENT_ID, peer.BASIC_CLIENT_SECRET)
    r = httpx2.post(meta["introspection_endpoint"], data={"token": new["access_token"]}, auth=auth)
    step(f"AT after 2.2s with ttl 2: {r.json()}")
    check(r.json() == {"active": False}, "expired AT")

    # slow_down
    da = httpx2.post(
        meta["device_authorization_endpoint"],
        data={"client_id": peer.PUBLIC_CLIENT_ID, "scope": "openid"},
    ).json()
    step(f"device authorization interval={da.get('interval')}")
    results = []
    for _ in range(3):
        r = httpx2.post(
            meta["token_endpoint"],
            data={
                "grant_type": peer.DEVICE_CODE_GRANT,
                "device_code": da["device_code"],
                "client_id": peer.PUBLIC_CLIENT_ID,
            },
        )
        results.append(r.json()["error"])
    step(f"3 fast polls with device_slow_down: {results}")
    check(results[0] == "authorization_pending" and "slow_down" in results[1:], "slow_down")


if __name__ == "__main__":
    main()
