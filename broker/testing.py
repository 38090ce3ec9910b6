"""The documented import path of the test runtime, whose home is `broker.runtime.testing`."""

from broker.runtime.fake_http import FakeHttp, HttpCall
from broker.runtime.testing import (
    Call,
    ConnectorTestRuntime,
    FakeOAuth,
    FakeSecrets,
    connector_test_runtime,
)

__all__ = [
    "Call",
    "ConnectorTestRuntime",
    "FakeHttp",
    "FakeOAuth",
    "FakeSecrets",
    "HttpCall",
    "connector_test_runtime",
]
