"""tokenctl: administer access tokens for financial-package integrations."""

__version__ = "0.1.0.dev0"
