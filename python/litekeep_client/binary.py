"""Finding the ``litekeep`` binary that serves the database.

Where the ``LITEKEEP`` environment variable is set, it is the binary (a path, or a name looked
up on ``PATH``) and nothing else is tried, so a wrong value is an error rather than a silent
fallback to another build. Otherwise ``litekeep`` is looked up on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
from typing import Mapping, Optional

from litekeep_client.errors import LitekeepNotFound

#: The environment variable naming the ``litekeep`` binary.
LITEKEEP_ENV = "LITEKEEP"

_INSTALL_HINT = (
    "build it with `cargo build --release --features duckdb` (after "
    '`eval "$(scripts/duckdb-env)"`) and put target/release on PATH, or set '
    f"{LITEKEEP_ENV} to the binary"
)


def find_litekeep(environ: Optional[Mapping[str, str]] = None) -> str:
    """Returns the path of the ``litekeep`` binary to run.

    ``environ`` defaults to ``os.environ``; its ``LITEKEEP`` and ``PATH`` are read.

    Raises :class:`LitekeepNotFound` when ``LITEKEEP`` names no executable file, or when it is
    unset and no ``litekeep`` is on ``PATH``.
    """
    env = os.environ if environ is None else environ
    named = env.get(LITEKEEP_ENV)
    path = env.get("PATH", os.defpath)
    if named:
        found = _executable(named, path)
        if found is None:
            raise LitekeepNotFound(
                f"{LITEKEEP_ENV}={named}",
                f"{_why_not(named)}; point {LITEKEEP_ENV} at the litekeep binary, or unset it "
                "to use the one on PATH",
            )
        return found
    found = shutil.which("litekeep", path=path)
    if found is None:
        raise LitekeepNotFound(f"{LITEKEEP_ENV} is unset and PATH has none", _INSTALL_HINT)
    return os.path.abspath(found)


def _executable(named: str, path: str) -> Optional[str]:
    """``named`` as an executable file: a path if it has a slash, else looked up on ``path``."""
    if os.sep in named:
        if os.path.isfile(named) and os.access(named, os.X_OK):
            return os.path.abspath(named)
        return None
    found = shutil.which(named, path=path)
    return os.path.abspath(found) if found else None


def _why_not(named: str) -> str:
    if os.sep not in named:
        return "no such program on PATH"
    if not os.path.exists(named):
        return "no such file"
    if os.path.isdir(named):
        return "it is a directory"
    return "it is not executable"
