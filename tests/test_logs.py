"""Log lines as `broker serve` writes them: JSON or text, the request's fields, request ids,
and no exception text."""

from __future__ import annotations

import contextvars
import logging
import re
import warnings
from datetime import UTC, datetime

import pytest

from broker.config import load_settings
from broker.errors import ConfigError
from broker.logs import begin_request, note_connection, request_id_from
from tests.helpers import broker_logging, json_lines

CANARY = "sk_live_LOG_CANARY_0c9d8e7f"
HEX_ID = re.compile(r"[0-9a-f]{32}")
log = logging.getLogger("broker.test")


def in_request(request_id: str | None, body: object) -> None:
    """Run `body` the way a request runs: in its own context, with a scope opened."""

    def run() -> None:
        begin_request(request_id, "GET", "/v1/connections/{connection_id}")
        note_connection("conn_1", "tenant-1")
        assert callable(body)
        body()

    contextvars.copy_context().run(run)


def test_a_json_line_has_the_fields_and_the_request() -> None:
    with broker_logging("json", "INFO") as out:
        log.info("outside any request")
        in_request("req-1.a_B", lambda: log.warning("inside %s", "it", extra={"status": 404}))
        log.debug("below the level")
    outside, inside = json_lines(out.getvalue())
    assert set(outside) == {"time", "level", "logger", "message"}
    assert outside["logger"] == "broker.test" and outside["level"] == "INFO"
    assert outside["time"].endswith("Z")
    assert datetime.fromisoformat(outside["time"]).tzinfo == UTC
    assert inside == {
        "time": inside["time"],
        "level": "WARNING",
        "logger": "broker.test",
        "message": "inside it",
        "request_id": "req-1.a_B",
        "method": "GET",
        "route": "/v1/connections/{connection_id}",
        "connection_id": "conn_1",
        "tenant_id": "tenant-1",
        "status": 404,
    }


def test_a_line_cannot_be_split_or_forged() -> None:
    with broker_logging("json") as out:
        log.info('one\nline\r\n{"level": "forged"} %s', "\u2028\x00")
    (line,) = json_lines(out.getvalue())
    assert line["message"].startswith("one\nline")


def test_an_exception_is_logged_without_its_text() -> None:
    def fail() -> None:
        try:
            try:
                raise KeyError(CANARY)
            except KeyError:
                raise ValueError(f"bad value {CANARY}") from None
        except ValueError as exc:
            raise RuntimeError(CANARY) from exc

    texts = {}
    for log_format in ("json", "text"):
        with broker_logging(log_format) as out:
            try:
                fail()
            except RuntimeError:
                log.exception("it failed")
        texts[log_format] = out.getvalue()
    (line,) = json_lines(texts["json"])
    assert line["message"] == "it failed"
    for text in (line["exception"], texts["text"]):
        assert "builtins.RuntimeError (text withheld)" in text
        assert "builtins.ValueError (text withheld)" in text
        assert "KeyError" not in text  # the context it suppressed (`from None`) stays out
        assert "tests/test_logs.py" in text and "in fail" in text
        assert CANARY not in text


def test_the_text_format_gains_the_request_id() -> None:
    with broker_logging("text", "INFO") as out:
        log.info("outside")
        in_request("req-7", lambda: log.info("inside"))
    outside, inside = out.getvalue().splitlines()
    assert outside.endswith("INFO broker.test outside")
    assert inside.endswith(
        "INFO broker.test inside [request_id=req-7 connection_id=conn_1 tenant_id=tenant-1]"
    )


def test_python_warnings_come_out_as_log_lines() -> None:
    with broker_logging("json") as out, warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    (line,) = json_lines(out.getvalue())
    assert line["logger"] == "py.warnings" and "deprecated thing" in line["message"]


@pytest.mark.parametrize(
    "header", ["a", "0" * 128, "abc-DEF_123.x", "4bf92f3577b34da6a3ce929d0e0e4736"]
)
def test_a_well_formed_request_id_is_kept(header: str) -> None:
    assert request_id_from(header) == header


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "0" * 129,
        "a b",
        "a\tb",
        "a\r\nSet-Cookie: x=1",
        "a%0d%0aSet-Cookie:x=1",
        'a"b',
        "a;b",
        "a,b",
        "a/b",
        "<script>",
        "ünï",
        "a\x00b",
        "abc\n",
    ],
)
def test_a_malformed_request_id_is_replaced(header: str | None) -> None:
    made = request_id_from(header)
    assert HEX_ID.fullmatch(made) and made != header
    assert request_id_from(header) != made  # random, not derived from the header


def test_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert (settings.log_format, settings.log_level) == ("text", "INFO")
    monkeypatch.setenv("BROKER_LOG_FORMAT", "JSON")
    monkeypatch.setenv("BROKER_LOG_LEVEL", "debug")
    settings = load_settings()
    assert (settings.log_format, settings.log_level) == ("json", "DEBUG")
    monkeypatch.setenv("BROKER_LOG_FORMAT", "logfmt")
    monkeypatch.setenv("BROKER_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "BROKER_LOG_FORMAT:" in str(caught.value)
    assert "BROKER_LOG_LEVEL:" in str(caught.value)
