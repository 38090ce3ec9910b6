"""The documented import path of the test runtime, whose home is `broker.runtime.testing`."""

from broker.runtime.testing import (
    Call,
    ConnectorTestRuntime,
    FakeOAuth,
    FakeSecrets,
    connector_test_runtime,
)

__all__ = ["Call", "ConnectorTestRuntime", "FakeOAuth", "FakeSecrets", "connector_test_runtime"]
