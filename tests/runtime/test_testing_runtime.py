"""broker.testing.connector_test_runtime, shown on tests/example_connector.py (the docs example)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker import errors, runtime
from broker.runtime import (
    BrokerUnavailable,
    NeedsReauth,
    NotGranted,
    NotOAuth,
    OAuth,
    SecretNotSet,
    Secrets,
    Unauthorized,
)
from broker.testing import connector_test_runtime
from tests.example_connector import CUSTOMERS_URL, SyncFailed, sync_customers

OAUTH = {"access_token": "at_123", "expires_in": 3600, "scopes": ["customers.read"]}
CUSTOMERS = {"data": [{"id": "cus_1", "name": "Ada Lovelace"}]}


class Provider:
    """Answers `fetch` like the provider would: 200 for the token it accepts, else 401."""

    def __init__(self, accepts: str) -> None:
        self.accepts = accepts
        self.seen: list[dict[str, str]] = []

    async def __call__(self, url: str, headers: Mapping[str, str]) -> tuple[int, Any]:
        assert url == CUSTOMERS_URL
        self.seen.append(dict(headers))
        if headers["Authorization"] != f"Bearer {self.accepts}":
            return 401, {"error": "invalid_token"}
        return 200, CUSTOMERS


# -- the example connector -------------------------------------------------------------------


async def test_sync_customers() -> None:
    with connector_test_runtime(secrets={"api_key": "sk_test_123"}, oauth=OAUTH) as rt:
        provider = Provider(accepts="at_123")
        result = await sync_customers(provider)
    assert result.status == "ok"
    assert result.customers == [{"id": "cus_1", "name": "Ada Lovelace"}]
    assert provider.seen == [{"Authorization": "Bearer at_123", "X-Api-Key": "sk_test_123"}]
    assert rt.calls == [("secret", "api_key"), ("access_token", 60)]


async def test_a_401_from_the_provider_forces_one_refresh() -> None:
    async with connector_test_runtime(secrets={"api_key": "sk"}, oauth=OAUTH) as rt:
        rt.oauth.next_refresh("at_456")
        provider = Provider(accepts="at_456")  # the provider revoked at_123 early
        result = await sync_customers(provider)
    assert result.status == "ok"
    assert [h["Authorization"] for h in provider.seen] == ["Bearer at_123", "Bearer at_456"]
    assert rt.calls_of("refresh") == [None]
    assert rt.oauth.refresh_count == 1


async def test_a_second_401_is_not_retried_forever() -> None:
    rt = connector_test_runtime(secrets={"api_key": "sk"}, oauth=OAUTH)
    with rt, pytest.raises(SyncFailed, match="401"):
        await sync_customers(Provider(accepts="something-else"))
    assert rt.oauth.refresh_count == 1


async def test_needs_reauth_is_reported() -> None:
    with connector_test_runtime(secrets={"api_key": "sk"}, oauth=OAUTH) as rt:
        rt.oauth.fail_next(NeedsReauth)
        result = await sync_customers(Provider(accepts="at_123"))
    assert result.status == "needs_reauth"


async def test_a_token_rotated_elsewhere_is_what_the_connector_sends() -> None:
    with connector_test_runtime(secrets={"api_key": "sk"}, oauth=OAUTH) as rt:
        rt.oauth.set_token("at_rotated")
        provider = Provider(accepts="at_rotated")
        assert (await sync_customers(provider)).status == "ok"
    assert provider.seen[0]["Authorization"] == "Bearer at_rotated"


async def test_api_key_connection_has_no_oauth() -> None:
    with connector_test_runtime(secrets={"api_key": "sk"}) as rt, pytest.raises(NotOAuth):
        await sync_customers(Provider(accepts="at_123"))
    assert rt.calls == [("secret", "api_key"), ("access_token", 60)]


# -- the fakes keep the broker's semantics ---------------------------------------------------


async def test_grants_unset_values_and_versions() -> None:
    rt = connector_test_runtime(
        secrets={"api_key": "sk", "webhook_secret": None},
        settings={"page_size": 100, "region": "eu"},
        granted=["api_key", "webhook_secret", "page_size", "region", "account_id"],
    )
    rt.install()
    try:
        assert await Secrets.get("api_key") == "sk"
        assert await Secrets.get("page_size") == "100"
        assert (await Secrets.get_with_version("region")).version == 1
        with pytest.raises(SecretNotSet):
            await Secrets.get("webhook_secret")
        with pytest.raises(SecretNotSet):
            await Secrets.get("account_id")  # granted, never set
        with pytest.raises(NotGranted):
            await Secrets.get("client_secret")
        rt.secrets.set("api_key", "sk_v2")
        secret = await Secrets.get_with_version("api_key")
        assert (secret.value, secret.version) == ("sk_v2", 2)
    finally:
        rt.restore()


async def test_without_granted_only_given_names_are_granted() -> None:
    with connector_test_runtime(secrets={"api_key": "sk"}), pytest.raises(NotGranted):
        await Secrets.get("typo_key")


async def test_access_token_refreshes_within_the_margin() -> None:
    short = {**OAUTH, "expires_in": 120}
    with connector_test_runtime(oauth=short) as rt:
        assert await OAuth.access_token(min_ttl=60) == "at_123"
        assert await OAuth.access_token() == "at_123-refreshed-1"  # 120 s < the 300 s margin
        token = await OAuth.token()
        assert token.scopes == ("customers.read",)
        assert token.expires_at is not None
        assert token.expires_at > datetime.now(UTC) + timedelta(minutes=55)
        rt.oauth.expire()
        assert await OAuth.accessToken() == "at_123-refreshed-2"
        assert (await OAuth.refresh()).access_token == "at_123-refreshed-3"
    assert rt.calls_of("access_token") == [60, None, None, None]


async def test_a_token_without_expiry_is_never_refreshed_by_min_ttl() -> None:
    with connector_test_runtime(oauth={"access_token": "gh", "expires_in": None}) as rt:
        assert (await OAuth.token(min_ttl=86_400)).expires_at is None
    assert rt.oauth.refresh_count == 0


async def test_scripted_failures_raise_the_sdk_classes() -> None:
    with connector_test_runtime(secrets={"api_key": "sk"}, oauth=OAUTH) as rt:
        rt.secrets.fail_next(BrokerUnavailable, times=2)
        rt.oauth.fail_next(errors.Unauthorized)  # a broker.errors class maps to the SDK's
        for _ in range(2):
            with pytest.raises(BrokerUnavailable):
                await Secrets.get("api_key")
        assert await Secrets.get("api_key") == "sk"
        with pytest.raises(Unauthorized):
            await OAuth.access_token()
        assert await OAuth.access_token() == "at_123"
    assert len(rt.calls_of("secret")) == 3  # failed calls are recorded too


def test_bad_oauth_config_is_refused() -> None:
    with pytest.raises(ValueError, match="refresh_token"):
        connector_test_runtime(oauth={**OAUTH, "refresh_token": "rt"})
    with pytest.raises(ValueError, match="access_token"):
        connector_test_runtime(oauth={"expires_in": 60})


async def test_install_and_restore_nest() -> None:
    outer = connector_test_runtime(secrets={"api_key": "outer"})
    inner = connector_test_runtime(secrets={"api_key": "inner"})
    with outer:
        with inner:
            assert await Secrets.get("api_key") == "inner"
            with pytest.raises(RuntimeError, match="already installed"):
                inner.install()
        assert await Secrets.get("api_key") == "outer"
    assert runtime.use_client(None) is None  # nothing left installed
