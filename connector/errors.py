"""The connector's exception tree, in one place.

    ConnectorError
    ├── ConfigError          a setting is missing or wrong: fatal at start, names the key
    ├── MappingError         a mapping file is wrong: fatal at start, names file and field
    ├── SourceError          the local system cannot be read: pulling pauses, pushing goes on
    ├── StoreError           the state store cannot be written: pulling pauses
    │   └── StoreBusy        another `connector run` holds the store: fatal at start
    └── PortalError          the portal call did not succeed as a whole
        ├── PortalTransient  5xx, timeout, reset, throttling, non-JSON reply: retry later
        └── PortalRefused    login or envelope refused: keep items queued, alert, back off

Record-level problems (a field the portal would refuse, a rejected item) are *not*
exceptions: they are values (`core.records.Problem`, `core.records.Outcome`) so one bad
record never stops the others.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error the connector raises on purpose."""


class ConfigError(ConnectorError):
    """A configuration key is missing or invalid; the message names the key."""


class MappingError(ConnectorError):
    """A mapping file cannot be compiled; the message names the file and the field."""


class SourceError(ConnectorError):
    """The local system could not be read (connection lost, query failed)."""


class StoreError(ConnectorError):
    """The state store could not be read or written (locked, disk full)."""


class StoreBusy(StoreError):
    """Another `connector run` (daemon or `--once`) holds the state store's worker lock."""


class PortalError(ConnectorError):
    """A call to the portal failed as a whole."""


class PortalTransient(PortalError):
    """Worth retrying later; `retry_after` is the portal's own hint in seconds, if any.

    `throttled` marks HTTP 429: the portal's rate limit, not the items' fault, so it never
    counts as one of their attempts.
    """

    def __init__(
        self, reason: str, *, retry_after: float | None = None, throttled: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.throttled = throttled


class PortalRefused(PortalError):
    """Credentials, `dstcode` or envelope refused: an operator must act; items stay queued."""
