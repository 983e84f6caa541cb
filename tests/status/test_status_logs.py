"""Logging: one JSON/console format for structlog and stdlib, personal data never in clear."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from connector.core.masking import mask
from connector.logs import REDACTED, configure_logging, mask_personal

NAME = "Nguyễn Văn An"
EMAIL = "an.nguyen@example.vn"
PHONE = "0912345678"
ID_NUMBER = "001203004567"
PASSWORD = "s3cret"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Configure JSON logs onto a buffer, and put global logging back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=buffer)
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.NOTSET)
    structlog.reset_defaults()


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in buffer.getvalue().splitlines()]


def test_personal_data_and_secrets_never_reach_the_output(output: io.StringIO) -> None:
    """Names, e-mails, phones, ID numbers and passwords appear only as fingerprints."""
    log = structlog.get_logger("connector.test.personal")
    log.info(f"mail {EMAIL} phone {PHONE}", ChuHoSo=NAME, note=f"id {ID_NUMBER}", password=PASSWORD)
    text = output.getvalue()
    for secret in (NAME, EMAIL, PHONE, ID_NUMBER, PASSWORD):
        assert secret not in text
    for value in (NAME, EMAIL, PHONE, ID_NUMBER):
        assert mask(value) in text
    assert REDACTED in text


def test_json_lines_carry_timestamp_level_and_logger(output: io.StringIO) -> None:
    """Each JSON line has an ISO UTC timestamp, the level and the logger name."""
    structlog.get_logger("connector.test.shape").warning("push paused", attempts=3)
    (line,) = _lines(output)
    assert line["event"] == "push paused"
    assert line["level"] == "warning"
    assert line["logger"] == "connector.test.shape"
    assert line["attempts"] == 3
    assert str(line["timestamp"]).endswith("Z")


def test_stdlib_records_share_the_format_and_the_masking(output: io.StringIO) -> None:
    """A plain logging record (uvicorn, apscheduler) is rendered as the same masked JSON."""
    logging.getLogger("apscheduler.executors.default").warning("job for %s missed", EMAIL)
    (line,) = _lines(output)
    assert line["logger"] == "apscheduler.executors.default"
    assert line["level"] == "warning"
    assert line["event"] == f"job for {mask(EMAIL)} missed"


def test_exception_text_is_scrubbed(output: io.StringIO) -> None:
    """A traceback whose message holds an ID number is logged with the number masked."""
    try:
        raise ValueError(f"duplicate SoDinhDanh {ID_NUMBER}")
    except ValueError:
        structlog.get_logger("connector.test.exc").exception("ingest failed")
    (line,) = _lines(output)
    assert "ValueError" in str(line["exception"])
    assert ID_NUMBER not in output.getvalue()


def test_httpx_info_is_quieted(output: io.StringIO) -> None:
    """httpx logs each request at INFO; those lines are dropped, its warnings kept."""
    logging.getLogger("httpx").info("HTTP Request: POST https://portal/auth")
    logging.getLogger("httpx").warning("connection pool full")
    assert [line["event"] for line in _lines(output)] == ["connection pool full"]


def test_console_format_masks_too() -> None:
    """The console renderer gets the same masking as JSON."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        configure_logging(fmt="console", stream=buffer)
        structlog.get_logger("connector.test.console").info("hello", Email=EMAIL, token="abc")
    finally:
        root.handlers[:] = handlers
        structlog.reset_defaults()
    assert "hello" in buffer.getvalue()
    assert EMAIL not in buffer.getvalue()
    assert "abc" not in buffer.getvalue()


def test_reconfiguring_replaces_the_handler(output: io.StringIO) -> None:
    """Calling configure_logging twice leaves one handler, so lines are not doubled."""
    second = io.StringIO()
    configure_logging(fmt="json", stream=second)
    logging.getLogger("connector.test.twice").warning("once")
    assert output.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


@pytest.mark.parametrize(
    "key", ["password", "Password", "session", "TOKEN", "Authorization", "secret", "api_token"]
)
def test_secret_keys_are_redacted(key: str) -> None:
    """Keys naming a secret, in any case, are replaced by «redacted»."""
    assert mask_personal(None, "info", {"event": "x", key: "value"})[key] == REDACTED


def test_nested_values_are_masked() -> None:
    """Personal fields inside dicts and lists are masked as well."""
    event = {"event": "batch", "items": [{"ChuHoSo": NAME, "MaHoSo": "H26-220713-0001"}]}
    result = mask_personal(None, "info", event)
    assert result["items"] == [{"ChuHoSo": mask(NAME), "MaHoSo": "H26-220713-0001"}]


def test_plain_values_pass_unchanged() -> None:
    """Counts, codes and dossier numbers are left readable."""
    event = {"event": "pushed", "count": 50, "code": "0", "ok": True, "took": 0.2}
    assert mask_personal(None, "info", event) == event
