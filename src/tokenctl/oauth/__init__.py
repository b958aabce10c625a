"""OAuth 2.0 / OpenID Connect: endpoints, the loopback listener and the authlib client.

Everything here is imported lazily: ``tokenctl list`` never loads authlib or httpx2.
"""
