"""`Transport`: one request to the broker with bounded timeouts, retried while the broker is
unavailable, and the broker's refusals turned into the SDK's exceptions.

Only `BrokerUnavailable` is retried (exponential backoff with full jitter, bounded in count
and in total time); a 4xx is an answer, and asking again would not change it. A request the
broker may already have acted on (a connection lost after sending a proxied POST) is not
sent twice: `idempotent=False` retries only when the connection was never made.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy

from broker.runtime.errors import (
    BrokerRuntimeError,
    BrokerUnavailable,
    NotFound,
    RateLimited,
    error_class,
)

# the name the SDK has always logged under, which connector code may have configured
logger = logging.getLogger("broker.runtime")

# on a proxied answer: the broker made it (a refusal), not the provider (DESIGN section 7)
BROKER_ERROR_HEADER = "Broker-Error"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class Transport:
    base: str
    token: str
    retries: int
    backoff: float
    max_backoff: float
    request_timeout: float
    connect_timeout: float
    total_timeout: float

    async def send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        idempotent: bool = True,
        proxied: bool = False,
        not_found: type[BrokerRuntimeError] = NotFound,
    ) -> Answer:
        """The broker's answer; a proxied provider answer is returned whatever its status."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        what = f"{method} {path}"
        sent = {**(headers or {}), "Authorization": f"Bearer {self.token}"}
        attempt = 0
        while True:
            attempt += 1
            remaining = max(deadline - loop.time(), 0.001)
            timeout = aiohttp.ClientTimeout(
                total=min(self.request_timeout, remaining), sock_connect=self.connect_timeout
            )
            retry_after = None
            try:
                async with session.request(
                    method, self.base + path, params=params, headers=sent, data=body,
                    timeout=timeout,
                ) as resp:  # fmt: skip
                    answer = Answer(resp.status, resp.headers, await resp.read())
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                cause: BaseException | None = exc
                reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
                failure: BrokerRuntimeError = BrokerUnavailable(f"{what}: {reason}")
                if not idempotent and not isinstance(exc, aiohttp.ClientConnectorError):
                    raise failure from exc  # the broker may have forwarded it already
            else:
                broker_made = not proxied or BROKER_ERROR_HEADER in answer.headers
                if 200 <= answer.status < 300 or not broker_made:
                    return answer
                retry_after = answer.headers.get("Retry-After")
                cause, failure = None, self.error(answer, what, not_found)
            if not isinstance(failure, BrokerUnavailable):
                raise failure
            delay = self._delay(attempt, retry_after)
            if attempt > self.retries or loop.time() + delay >= deadline:
                raise BrokerUnavailable(
                    f"broker unavailable after {attempt} attempts; last: {failure}",
                    status=failure.status,
                    code=failure.code,
                ) from cause
            logger.info(
                "broker runtime: %s unavailable (%s), retry %d in %.2fs",
                what,
                failure.code,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        # full jitter: replicas that failed together do not come back together
        delay = random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
        if retry_after is not None and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        return delay

    def error(
        self, answer: Answer, what: str, not_found: type[BrokerRuntimeError]
    ) -> BrokerRuntimeError:
        status, code, message = answer.status, "", ""
        try:
            body = json.loads(answer.body)
        except ValueError:
            body = None
        if isinstance(body, dict):
            code, message = str(body.get("error") or ""), str(body.get("message") or "")
        code = code or answer.headers.get(BROKER_ERROR_HEADER, "")
        # the broker never sends credentials back, but do not trust a proxy to agree
        message = message.replace(self.token, "[runtime token]")[:300]
        text = f"{what} -> {status} {code or 'error'}" + (f": {message}" if message else "")
        cls = error_class(code)
        if cls is NotFound:
            cls = not_found
        elif cls is BrokerRuntimeError and (status == 503 or (status in (502, 504) and not code)):
            cls = BrokerUnavailable  # a proxy in front of a broker that is down or restarting
        if not code and cls is BrokerRuntimeError:
            code = "unexpected_response"  # not the broker talking: a wrong URL or a proxy
        error = cls(text, status=status, code=code or None)
        retry_after = answer.headers.get("Retry-After", "")
        if isinstance(error, RateLimited) and retry_after.isdigit():
            error.retry_after = int(retry_after)
        return error
