"""Renewing credentials when the service says they expired.

botocore's refreshable credentials (web identity for pods, SSO, assumed roles)
renew themselves shortly before the expiry they were given. A clock skew, or a token
revoked early, can still make the service answer ExpiredToken first; then the retry
must sign with new credentials, not the same expired ones. This forces the refresh
on the very object the client signs with, so every client sharing it sees the new
keys (the lean path signs with the same object and is told to re-read it). It uses
botocore's refresh lock and method (private names, pinned by a test).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["force_refresh"]

log = logging.getLogger("batchrek")


def _signing_credentials(client: Any) -> Any:
    own = getattr(client, "signing_credentials", None)  # the lean path's (call.lean)
    if own is not None:
        return own
    signer = getattr(client, "_request_signer", None)
    return getattr(signer, "_credentials", None)


async def force_refresh(client: Any) -> bool:
    """Refresh the client's credentials now. False when they cannot be refreshed
    (static keys): the retry then fails again and is recorded as it is."""
    creds = _signing_credentials(client)
    refresh = getattr(creds, "_protected_refresh", None)
    lock = getattr(creds, "_refresh_lock", None)
    if refresh is None or lock is None:
        return False
    async with lock:
        await refresh(is_mandatory=True)
    forget = getattr(client, "forget_credentials", None)
    if forget is not None:  # the lean path keeps a copy of the frozen keys
        forget()
    log.info("credentials refreshed after an expired-token answer")
    return True
