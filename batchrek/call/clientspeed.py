"""Per-request work botocore does that a batch run does not need.

botocore builds the User-Agent string from its components twice per request (once
when the request dict is made, once more in a ``request-created`` handler that adds the
features the request used): ~50 us each, a tenth of the client's CPU per image at
hundreds of images per second. A batch run sends the same operation all night, so the
string is built once and reused. The header still goes out, with the session's and
client's components; only the per-request feature codes are left out.

This reaches into botocore's private ``_user_agent_creator``; if a botocore release
renames it, ``freeze_user_agent`` changes nothing and returns False (the run is only
slower), and ``tests/test_clientspeed.py`` fails on the pinned version so the change is
noticed.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["freeze_user_agent"]

log = logging.getLogger(__name__)


class _FrozenUserAgent:
    """Stands in for botocore's ``UserAgentString``: the string, built once."""

    def __init__(self, value: str) -> None:
        self._value = value

    def to_string(self) -> str:
        return self._value

    def rebuild_and_replace_user_agent_handler(self, *args: Any, **kwargs: Any) -> None:
        """No rebuild: the header set from ``to_string`` stays."""

    def __repr__(self) -> str:
        return f"_FrozenUserAgent({self._value!r})"


def freeze_user_agent(client: Any) -> bool:
    """Build ``client``'s User-Agent once; True when botocore's hooks were found."""
    creator = getattr(client, "_user_agent_creator", None)
    rebuild = getattr(creator, "rebuild_and_replace_user_agent_handler", None)
    to_string = getattr(creator, "to_string", None)
    if creator is None or rebuild is None or to_string is None:
        log.debug("botocore has no _user_agent_creator here; User-Agent not frozen")
        return False
    service_id = client.meta.service_model.service_id.hyphenize()
    client.meta.events.unregister(f"request-created.{service_id}", rebuild)
    client._user_agent_creator = _FrozenUserAgent(to_string())
    return True
