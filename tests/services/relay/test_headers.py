"""What crosses the proxy in each direction (pure: header maps and strings)."""

from __future__ import annotations

from multidict import CIMultiDict

from broker.manifest import QueryAuth
from broker.services.relay.credentials import Credential, bearer, query_name
from broker.services.relay.headers import to_provider, to_runtime
from broker.services.relay.observed import path_template

SECRET = "sk_live_SECRET_9f86d081884c"


def test_towards_the_provider_nothing_of_the_runtime_s_own_auth_or_connection_goes() -> None:
    sent = CIMultiDict(
        [
            ("Authorization", "Bearer brt1.runtime"),
            ("Broker-Target", "https://api.example.com/x"),
            ("Host", "broker.internal"),
            ("Cookie", "a=1"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "dropped: named by Connection"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Authorization", "Basic eA=="),
            ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Content-Length", "12"),
            ("Expect", "100-continue"),
            ("X-Api-Key", "runtime-chosen"),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "k-1"),
            ("Accept", "application/json"),
        ]
    )
    out = to_provider(sent, ("Authorization", "X-Api-Key"))
    assert dict(out) == {
        "Content-Type": "application/json",
        "Idempotency-Key": "k-1",
        "Accept": "application/json",
        "Accept-Encoding": "identity",
    }
    kept = to_provider(CIMultiDict({"Accept-Encoding": "gzip"}), ())
    assert kept["Accept-Encoding"] == "gzip"


def test_towards_the_runtime_no_cookie_no_hop_and_no_header_quoting_the_credential() -> None:
    answer = CIMultiDict(
        [
            ("Content-Type", "application/json"),
            ("Content-Encoding", "gzip"),
            ("Retry-After", "7"),
            ("Set-Cookie", "session=1"),
            ("Connection", "close"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "10"),
            ("X-Debug", f"you sent Bearer {SECRET}"),
            ("Request-Id", "req_1"),
        ]
    )
    out = to_runtime(answer, bearer(SECRET).values)
    assert dict(out) == {
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
        "Retry-After": "7",
        "Request-Id": "req_1",
    }


def test_a_query_credential_is_scrubbed_from_urls_and_added_as_a_parameter() -> None:
    auth = QueryAuth(type="query", name="api_key", secret="api_key")
    scrub = query_name(auth)
    assert scrub.scrubbed("https://a.example/v1?x=1&api_key=mine&y=2") == (
        "https://a.example/v1?x=1&y=2"
    )
    assert scrub.scrubbed("/next?page=2") == "/next?page=2"  # untouched: its encoding kept
    credential = Credential(query=("api_key", SECRET), values=(SECRET,))
    assert credential.params == {"api_key": SECRET}
    assert credential.names == ("Authorization",)
    assert query_name(None).scrubbed("https://a.example/?api_key=1") == (
        "https://a.example/?api_key=1"
    )


def test_path_templates_keep_words_and_hide_ids() -> None:
    assert path_template("/v1/customers/cus_N1ffr2/sources") == "/v1/customers/{id}/sources"
    assert path_template("/v3/objects/contacts/12345") == "/v3/objects/contacts/{id}"
    assert path_template("/repos/octo/hello%20world/issues") == "/repos/octo/{id}/issues"
    assert path_template("/") == "/"
    assert path_template("/v1/line_items") == "/v1/line_items"


def test_a_credential_s_repr_names_its_places_never_its_values() -> None:
    for credential in (
        bearer(SECRET),
        Credential(headers={"X-Api-Key": SECRET}, values=(SECRET,)),
        Credential(query=("api_key", SECRET), values=(SECRET,)),
    ):
        shown = f"{credential!r} {credential} {[credential]}"
        assert SECRET not in shown
    assert "X-Api-Key" in repr(Credential(headers={"X-Api-Key": SECRET}, values=(SECRET,)))
