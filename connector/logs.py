"""Structured logging for the daemon: one format for every line, personal data masked.

structlog renders both our own events and the standard-library records of uvicorn,
APScheduler and httpx (through `ProcessorFormatter`), so an operator greps one format.
`mask_personal` runs last before rendering, on every line: personal fields are replaced by
fingerprints, secrets by «redacted», and free text is scrubbed of e-mails, phones and ID
numbers, including exception tracebacks (formatted to text first for that reason).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, Literal, TextIO

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from connector.core.masking import PERSONAL_FIELDS, mask, scrub_text

REDACTED = "«redacted»"
_SECRET_WORDS = ("password", "session", "token", "authorization", "secret")
_NOISY_LOGGERS = ("httpx", "httpcore")
_FIRST_KEYS = ("timestamp", "level", "logger", "event")
_META_KEYS = frozenset({"_record", "_from_structlog"})


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(lowered == w or lowered.endswith("_" + w) for w in _SECRET_WORDS)


def _scrub(value: Any) -> Any:
    """A value safe to log: text scrubbed, containers walked, other objects as scrubbed text."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, int):
        text = str(value)
        return value if scrub_text(text) == text else mask(text)
    if isinstance(value, Mapping):
        return {k: _clean(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return scrub_text(str(value))


def _clean(key: str, value: Any) -> Any:
    if value is None:
        return None
    if _is_secret(key):
        return REDACTED
    if key in PERSONAL_FIELDS:
        return mask(value)
    return _scrub(value)


def mask_personal(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: no personal data or secret leaves this processor in clear."""
    return {
        key: value if key in _META_KEYS else _clean(key, value) for key, value in event_dict.items()
    }


def _shared_processors() -> list[Processor]:
    """Run on both structlog events and foreign stdlib records before formatting."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def _renderer(fmt: Literal["console", "json"], stream: TextIO) -> Processor:
    if fmt == "json":
        return structlog.processors.JSONRenderer(serializer=_dumps)
    colors = bool(getattr(stream, "isatty", lambda: False)())
    return structlog.dev.ConsoleRenderer(
        colors=colors, exception_formatter=structlog.dev.plain_traceback
    )


def _dumps(event_dict: Any, **_: Any) -> str:
    """One JSON line, opening with when, how bad, where and what (easier to scan)."""
    head = {key: event_dict[key] for key in _FIRST_KEYS if key in event_dict}
    return orjson.dumps(head | event_dict, default=str).decode("utf-8")


def _formatter(fmt: Literal["console", "json"], stream: TextIO) -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            mask_personal,
            _renderer(fmt, stream),
        ],
    )


class _Handler(logging.StreamHandler[TextIO]):
    """Marks the handler this module installed, so reconfiguring replaces it."""


def configure_logging(
    *,
    fmt: Literal["console", "json"] = "console",
    level: str = "INFO",
    stream: TextIO | None = None,
) -> None:
    """Route structlog and stdlib logging to `stream` (stderr) in one masked format."""
    target = stream if stream is not None else sys.stderr
    handler = _Handler(target)
    handler.setFormatter(_formatter(fmt, target))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Skipped runs of a still-running job are the design (jobs never overlap), not news.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)
    logging.getLogger("apscheduler.executors").setLevel(logging.WARNING)  # "executed successfully"
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
