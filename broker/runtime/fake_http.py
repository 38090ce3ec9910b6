"""`FakeHttp`: the test runtime's egress proxy. It refuses what the broker would refuse (a
URL outside the manifest's `permissions.http` raises `EgressDenied`), records every call,
and answers from canned responses queued by the test, like the guide's
`runtime.http.getOnce(...)`:

    rt.http.get_once(status=200, body={"data": [...]})
    rt.http.post_once(url="https://api.stripe.com/v1/customers", status=402, body={...})

An answer queued with a `url` serves only a request for that URL (the query included when the
queued URL has one); otherwise the next request of that method. A request with no answer
queued fails the test with an `AssertionError` that says what was asked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, TypedDict, Unpack

from multidict import CIMultiDict, CIMultiDictProxy

from broker import errors
from broker.http_rules import check
from broker.runtime.errors import EgressDenied
from broker.runtime.wire import HttpResponse


class Answer(TypedDict, total=False):
    status: int  # 200 unless given
    body: object  # bytes and str as they are, anything else as JSON
    headers: Mapping[str, str]
    url: str  # serve only a request for this URL


class HttpCall(NamedTuple):
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None

    def json(self) -> object:
        return json.loads(self.body or b"null")


@dataclass
class _Canned:
    method: str
    url: str | None
    response: HttpResponse

    def serves(self, method: str, url: str) -> bool:
        if self.method != method:
            return False
        if self.url is None or url == self.url:
            return True
        return "?" not in self.url and url.split("?")[0] == self.url


def _response(status: int, body: object, headers: Mapping[str, str] | None) -> HttpResponse:
    sent = CIMultiDict(headers or {})
    if isinstance(body, bytes):
        content = body
    elif isinstance(body, str):
        content = body.encode()
        sent.setdefault("Content-Type", "text/plain; charset=utf-8")
    elif body is None:
        content = b""
    else:
        content = json.dumps(body).encode()
        sent.setdefault("Content-Type", "application/json")
    return HttpResponse(status, CIMultiDictProxy(sent), content)


@dataclass
class FakeHttp:
    patterns: list[str] | None  # None: no manifest given, every URL is allowed
    calls: list[HttpCall] = field(default_factory=list)
    _canned: list[_Canned] = field(default_factory=list)
    _failures: list[Exception] = field(default_factory=list)

    def once(
        self,
        method: str,
        *,
        status: int = 200,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        url: str | None = None,
    ) -> None:
        self._canned.append(_Canned(method.upper(), url, _response(status, body, headers)))

    def get_once(self, **answer: Unpack[Answer]) -> None:
        self.once("GET", **answer)

    def post_once(self, **answer: Unpack[Answer]) -> None:
        self.once("POST", **answer)

    def put_once(self, **answer: Unpack[Answer]) -> None:
        self.once("PUT", **answer)

    def patch_once(self, **answer: Unpack[Answer]) -> None:
        self.once("PATCH", **answer)

    def delete_once(self, **answer: Unpack[Answer]) -> None:
        self.once("DELETE", **answer)

    def fail_next(self, error: Exception) -> None:
        self._failures.append(error)

    @property
    def urls(self) -> list[str]:
        return [call.url for call in self.calls]

    @property
    def pending(self) -> list[str]:
        """Queued answers nothing asked for (a test may assert this is empty)."""
        return [f"{c.method} {c.url or '*'}" for c in self._canned]

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None
    ) -> HttpResponse:
        self.calls.append(HttpCall(method, url, dict(headers), body))
        if self._failures:
            raise self._failures.pop(0)
        if self.patterns is not None:
            try:
                check(self.patterns, url)  # the broker's own rules, so both refuse alike
            except errors.EgressDenied as exc:
                raise EgressDenied(f"{method} -> 403 egress_denied: {exc}") from None
        for i, canned in enumerate(self._canned):
            if canned.serves(method, url):
                del self._canned[i]
                return canned.response
        raise AssertionError(f"no canned answer for {method} {url} (use rt.http.get_once(...))")
