"""Settings: names and defaults of DESIGN section 8, comma lists, clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import load_settings
from broker.errors import ConfigError
from broker.web.app import create_app


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BROKER_HOST", "BROKER_PORT", "BROKER_STORE", "BROKER_PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert (s.host, s.port, s.store) == ("127.0.0.1", 8080, "sqlite:///./broker-data/broker.db")
    assert s.sqlite_path == "./broker-data/broker.db"
    assert s.public_url == "http://127.0.0.1:8080"
    assert s.webhook_base_url == s.public_url
    assert s.allowed_return_origins == ["http://127.0.0.1:8080"]
    assert s.refresh_margin == 300


def test_environment_and_lists(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BROKER_PORT", "9000")
    monkeypatch.setenv("BROKER_ADMIN_TOKEN", "first-token-0123456789, second-token-0123456789")
    monkeypatch.setenv(
        "BROKER_ALLOWED_RETURN_ORIGINS", "https://app.example.com,https://b.example.com"
    )
    monkeypatch.setenv("BROKER_CONNECTORS_DIRS", f"{tmp_path}/a,{tmp_path}/b")
    monkeypatch.setenv("BROKER_PUBLIC_URL", "https://broker.example.com/")
    monkeypatch.setenv("BROKER_STORE", "redis+cluster://10.0.0.1:7000,10.0.0.2:7000")
    s = load_settings()
    assert s.port == 9000
    assert [t.get_secret_value() for t in s.admin_token] == [
        "first-token-0123456789",
        "second-token-0123456789",
    ]
    assert s.allowed_return_origins == ["https://app.example.com", "https://b.example.com"]
    assert s.connectors_dirs == [tmp_path / "a", tmp_path / "b"]
    assert s.public_url == "https://broker.example.com"
    assert s.webhook_base_url == "https://broker.example.com"
    assert s.sqlite_path is None


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("BROKER_PORT", "eighty", "BROKER_PORT"),
        ("BROKER_PORT", "70000", "BROKER_PORT"),
        ("BROKER_STORE", "mysql://x", "BROKER_STORE: must start with one of"),
        ("BROKER_PUBLIC_URL", "ftp://x", "BROKER_PUBLIC_URL: must be an http"),
        ("BROKER_ALLOWED_RETURN_ORIGINS", "https://app.example.com/path", "not an origin"),
        ("BROKER_ADMIN_TOKEN", "short", "at least 16 characters"),
        ("BROKER_REFRESH_MARGIN", "-1", "BROKER_REFRESH_MARGIN"),
        ("BROKER_EGRESS_NAMESERVERS", "10.0.0.2,dns.example.com", "'dns.example.com' is not ip"),
        ("BROKER_EGRESS_NAMESERVERS", "10.0.0.2:0", "'10.0.0.2:0' is not ip[:port]"),
        ("BROKER_EGRESS_NAMESERVERS", "[::1]x", "BROKER_EGRESS_NAMESERVERS"),
    ],
)
def test_invalid_values_are_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert fragment in str(info.value)
    if name == "BROKER_ADMIN_TOKEN":
        assert value not in str(info.value).replace("BROKER_", "")


def test_egress_nameservers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().egress_nameservers == []  # the system resolver
    monkeypatch.setenv("BROKER_EGRESS_NAMESERVERS", "10.0.0.2, 127.0.0.1:5353,[fd00::53]:53")
    assert load_settings().egress_nameservers == ["10.0.0.2", "127.0.0.1:5353", "[fd00::53]:53"]


def test_runnable_needs_keyring_and_admin_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("BROKER_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("BROKER_KEYRING_FILE", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError) as info:
        load_settings().require_runnable()
    assert "BROKER_KEYRING_FILE" in str(info.value) and "does not exist" in str(info.value)
    assert "BROKER_ADMIN_TOKEN: not set" in str(info.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BROKER_BRAND_ACCENT", "red", "BROKER_BRAND_ACCENT"),
        ("BROKER_BRAND_ACCENT", "#12345", "BROKER_BRAND_ACCENT"),
        ("BROKER_BRAND_LOGO_FILE", "/etc/passwd", "must be one of .gif, .jpeg"),
        ("BROKER_BRAND_NAME", "x" * 81, "BROKER_BRAND_NAME"),
    ],
)
def test_branding_is_checked(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_an_unreadable_logo_stops_the_start(tmp_path: Path, keyring_file: Path) -> None:
    settings = load_settings(keyring_file=keyring_file, brand_logo_file=tmp_path / "no.png")
    with pytest.raises(ConfigError, match="BROKER_BRAND_LOGO_FILE: cannot read"):
        create_app(settings)


def test_the_crash_point_setting_is_refused_outside_dev_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`BROKER_TEST_CRASH_AT` kills the process on purpose (the kill-point tests): a stray
    variable in production must stop the start, not arm it."""
    monkeypatch.setenv("BROKER_TEST_CRASH_AT", "after_apply:xero")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "BROKER_TEST_CRASH_AT" in str(info.value) and "--dev" in str(info.value)
    assert load_settings(dev=True).test_crash_at == "after_apply:xero"
    monkeypatch.setenv("BROKER_TEST_CRASH_AT", "halfway")
    with pytest.raises(ConfigError) as info:
        load_settings(dev=True)
    assert "BROKER_TEST_CRASH_AT" in str(info.value)
