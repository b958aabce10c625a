"""Loading and editing definitions: built-in package data plus the user's ``definitions.toml``."""

from __future__ import annotations

import binascii
import importlib.util
import marshal
import os
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenctl.config import read_toml
from tokenctl.definitions.model import Definition, parse_definition
from tokenctl.errors import ConfigError, ConflictError, NotFoundError
from tokenctl.fsutil import exclusive_lock, write_private_atomic

BUILTIN_SOURCE = "built-in"


def _parse_document(document: Mapping[str, Any], source: str) -> dict[str, Definition]:
    unknown = sorted(set(document) - {"definitions"})
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level key {unknown[0]!r}",
            hint="definitions go in tables named [definitions.NAME]",
        )
    tables = document.get("definitions", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{source}: 'definitions' must be a table of [definitions.NAME] tables")
    return {name: parse_definition(name, table, source) for name, table in tables.items()}


#: Package data next to this module (in the wheel too). Read as a plain file: importlib.resources
#: would import zipfile, bz2 and lzma on every command that loads definitions.
BUILTIN_FILE = Path(__file__).with_name("builtin.toml")
#: Changes whenever the layout of the parsed-builtins cache (see `_parse_builtin`) changes.
_CACHE_FORMAT = 1


def _builtin_cache_file() -> Path | None:
    """Where the parsed builtin.toml is cached: beside this module's byte code."""
    tag = sys.implementation.cache_tag
    if tag is None:  # pragma: no cover - an implementation without byte-code caching
        return None
    pyc = Path(importlib.util.cache_from_source(str(BUILTIN_FILE.with_suffix(".py"))))
    return pyc.with_name(f"{BUILTIN_FILE.name}.{tag}.marshal")


def _parse_builtin(data: bytes) -> dict[str, Any]:
    """builtin.toml as tomllib parses it, from a cache when the file has not changed.

    tomllib takes ~5 ms for the built-ins, a cost every command paid that reads
    definitions. Like Python with byte code, the parsed document is kept beside this
    module's byte code (honouring PYTHONPYCACHEPREFIX and PYTHONDONTWRITEBYTECODE), keyed
    by the file's length and CRC-32. A cache that cannot be read or written is ignored.
    """
    key = (_CACHE_FORMAT, len(data), binascii.crc32(data))
    cache = _builtin_cache_file()
    if cache is not None:
        try:
            cached = marshal.loads(cache.read_bytes())  # noqa: S302 - trusted as .pyc files are
        except (OSError, EOFError, ValueError, TypeError):
            cached = None
        if isinstance(cached, tuple) and len(cached) == 2 and cached[0] == key:
            document: dict[str, Any] = cached[1]
            return document
    document = tomllib.loads(data.decode("utf-8"))
    if cache is not None and not sys.dont_write_bytecode:
        try:
            payload = marshal.dumps((key, document))
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
            partial.write_bytes(payload)
            os.replace(partial, cache)
        except (OSError, ValueError):  # read-only install; or a value marshal cannot store
            pass
    return document


def load_builtin_definitions() -> dict[str, Definition]:
    """The definitions shipped as package data."""
    return _parse_document(_parse_builtin(BUILTIN_FILE.read_bytes()), BUILTIN_SOURCE)


def load_definition_file(path: Path) -> dict[str, Definition]:
    """Parse and validate every definition in one TOML file."""
    if not path.is_file():
        raise NotFoundError(f"no such file: {path}")
    return _parse_document(read_toml(path), str(path))


@dataclass(frozen=True)
class DefinitionSet:
    """All definitions in effect: built-ins overridden or extended by the user's file."""

    builtin: Mapping[str, Definition]
    user: Mapping[str, Definition]

    def get(self, name: str) -> Definition | None:
        """The definition in effect under ``name``, or ``None``."""
        return self.user.get(name) or self.builtin.get(name)

    def require(self, name: str) -> Definition:
        """The definition in effect under ``name``; a missing one is a not-found error."""
        definition = self.get(name)
        if definition is None:
            raise NotFoundError(
                f"no definition named {name!r}",
                hint="run `tokenctl definitions` to see the available definitions",
            )
        return definition

    def __iter__(self) -> Iterator[Definition]:
        merged = {**self.builtin, **self.user}
        return iter(sorted(merged.values(), key=lambda d: (d.classification.lower(), d.name)))

    def overrides_builtin(self, name: str) -> bool:
        """True when a user definition replaces a built-in of the same name."""
        return name in self.user and name in self.builtin


def load_definitions(user_file: Path) -> DefinitionSet:
    """Load the built-ins and the user's file; a malformed file raises :class:`ConfigError`."""
    user = _parse_document(read_toml(user_file), str(user_file)) if user_file.exists() else {}
    return DefinitionSet(builtin=load_builtin_definitions(), user=user)


def add_user_definitions(
    user_file: Path, lock_file: Path, new: Mapping[str, Definition], *, replace: bool
) -> None:
    """Merge validated definitions into the user's file, atomically and under a lock."""
    import tomli_w

    with exclusive_lock(lock_file):
        document = read_toml(user_file)
        tables = _user_tables(document)
        clashes = sorted(set(new) & set(tables))
        if clashes and not replace:
            raise ConflictError(
                f"definition {clashes[0]!r} already exists in {user_file}",
                hint="pass --replace to overwrite it",
            )
        for name, definition in new.items():
            tables[name] = dict(definition.raw)
        document["definitions"] = tables
        write_private_atomic(user_file, tomli_w.dumps(document).encode("utf-8"))


def _user_tables(document: Mapping[str, Any]) -> dict[str, Any]:
    tables = document.get("definitions") or {}
    return dict(tables) if isinstance(tables, dict) else {}


def remove_user_definition(user_file: Path, lock_file: Path, name: str) -> None:
    """Delete one definition from the user's file, atomically and under a lock."""
    import tomli_w

    with exclusive_lock(lock_file):
        document = read_toml(user_file)
        tables = _user_tables(document)
        if name not in tables:
            raise NotFoundError(f"no user definition named {name!r} in {user_file}")
        del tables[name]
        document["definitions"] = tables
        write_private_atomic(user_file, tomli_w.dumps(document).encode("utf-8"))
