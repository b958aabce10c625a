"""The relay page: for providers that accept only a registered HTTPS redirect URI.

The organisation hosts this static page at that URI. It forwards the query string to
tokenctl's one-shot listener on 127.0.0.1; the port is fixed (the definition's
redirect_port, the default when there is one) or comes from the front of the state
(``PORT.random``), which lets a crafted link reach any local port. Nothing leaves the
user's machine but the redirect to 127.0.0.1, and PKCE plus the state keep an
intercepted code useless.
"""

from __future__ import annotations

_TEMPLATE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>Returning to tokenctl</title>
</head>
<body>
<p id="message">Returning to tokenctl on this computer&hellip;</p>
<script>
(function () {
  "use strict";
  var fixedPort = __FIXED_PORT__;
  var query = new URLSearchParams(window.location.search);
  var match = /^([0-9]{2,5})\\./.exec(query.get("state") || "");
  var port = fixedPort || (match ? Number(match[1]) : 0);
  if (!(port >= 1024 && port <= 65535) || !(query.has("code") || query.has("error"))) {
    document.getElementById("message").textContent =
      "This page only completes tokenctl logins; start the login again from the terminal.";
    return;
  }
  window.location.replace("http://127.0.0.1:" + port + "/callback" + window.location.search);
})();
</script>
<noscript>Enable JavaScript, or use <code>tokenctl ... --paste</code> and paste this
page's address into the terminal.</noscript>
</body>
</html>
"""


#: The ports the page forwards to (none of the privileged ones).
FIXED_PORTS = range(1024, 65536)


def relay_page(fixed_port: int | None = None) -> str:
    """The HTML of the relay page; ``fixed_port`` for definitions with a fixed redirect_port.

    Without a fixed port the page forwards to whatever port the state names: any page on
    the web can link to it with ``state=PORT.x`` and so send the user's browser to any local
    web service (see docs/login.md). Prefer the fixed port.
    """
    if fixed_port is not None and fixed_port not in FIXED_PORTS:
        raise ValueError("the fixed port must be from 1024 to 65535")
    return _TEMPLATE.replace("__FIXED_PORT__", str(fixed_port) if fixed_port else "0")
