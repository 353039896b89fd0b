"""Which permanent failures a rerun redoes (``--redo-failed``): none, all, or codes.

The setting's value is ``None`` (none), ``"all"``, or error codes joined by commas
(``"NoSuchKey,AccessDenied"``). A TOML file may also say ``true``/``false`` or give a
list of codes; the environment ``1``/``true``/``0``/``off``.
"""

from __future__ import annotations

import re

from batchrek.output.resume.scan import RedoFailed

__all__ = ["normalize_redo", "redo_codes"]

_WORDS = {"1": True, "true": True, "yes": True, "on": True}
_WORDS |= {"0": False, "false": False, "no": False, "off": False, "": False}
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def normalize_redo(value: object) -> str | None:
    """The setting's value in its one spelling; ``ValueError`` says what is wrong."""
    if isinstance(value, str) and value.strip().lower() in _WORDS:
        value = _WORDS[value.strip().lower()]
    if value is None or value is False:
        return None
    if value is True:
        return "all"
    if isinstance(value, list | tuple) and all(isinstance(c, str) for c in value):
        value = ",".join(value)
    if not isinstance(value, str):
        raise ValueError(f"takes 'all' or error codes, not {value!r}")
    if value.strip().lower() == "all":
        return "all"
    codes = [c.strip() for c in value.split(",")]
    if not all(_CODE.fullmatch(c) for c in codes):
        raise ValueError(
            f"takes 'all' or error codes separated by commas (NoSuchKey,AccessDenied), "
            f"not {value!r}; on the command line put it after the manifest or write "
            "--redo-failed=CODES"
        )
    return ",".join(codes)


def redo_codes(value: str | None) -> RedoFailed:
    """What the scanner takes: False (none), True (every code) or a set of codes."""
    normal = normalize_redo(value)
    if normal is None:
        return False
    return True if normal == "all" else frozenset(normal.split(","))
