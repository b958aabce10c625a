"""Definitions: how each kind of token is obtained."""
