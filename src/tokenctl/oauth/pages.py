"""The small self-contained HTML pages the loopback listener answers the browser with."""

from __future__ import annotations

from html import escape

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;"
    "color:#1f2328}h1{font-size:1.4rem}.ok{color:#1a7f37}.fail{color:#cf222e}"
    "code{background:#f6f8fa;padding:.1rem .3rem;border-radius:4px}"
)


def page(title: str, body_html: str, *, ok: bool) -> bytes:
    """A complete page with no external resources (no fonts, scripts or images)."""
    marker = "ok" if ok else "fail"
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body data-result={marker}>"
        f"<h1 class={marker}>{escape(title)}</h1>{body_html}</body></html>"
    )
    return document.encode("utf-8")


def success_page(token_name: str, account: str | None, provider: str) -> bytes:
    """Shown after the code was exchanged and the id token checked."""
    who = (
        f"<p>Authorised account: <strong id=account>{escape(account)}</strong></p>"
        if account
        else "<p>The provider did not say which account was authorised.</p>"
    )
    return page(
        "tokenctl: token retrieved",
        f"<p>The token <code>{escape(token_name)}</code> for {escape(provider)} was stored, "
        f"encrypted.</p>{who}<p>You can close this window and return to the "
        "terminal.</p>",
        ok=True,
    )


def failure_page(message: str) -> bytes:
    """Shown when the provider or tokenctl refused the login."""
    return page(
        "tokenctl: login failed",
        f"<p id=message>{escape(message)}</p><p>Return to the terminal for details.</p>",
        ok=False,
    )


def rejected_page(reason: str) -> bytes:
    """Shown for a callback that was ignored (wrong state, wrong issuer)."""
    return page(
        "tokenctl: request ignored",
        f"<p id=message>{escape(reason)}</p><p>tokenctl is still waiting for the real "
        "login; start it again from the terminal if needed.</p>",
        ok=False,
    )
