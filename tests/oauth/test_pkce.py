"""RFC 7636: verifier shape and the S256 transform (Appendix B test vector)."""

from __future__ import annotations

import re

import pytest

from broker.oauth import create_code_verifier, create_s256_challenge


def test_rfc7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert create_s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_verifier_is_43_unreserved_chars_and_unique() -> None:
    verifiers = {create_code_verifier() for _ in range(50)}
    assert len(verifiers) == 50
    for verifier in verifiers:
        assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
        assert len(verifier) * 6 >= 256  # base64url: 6 bits per char


@pytest.mark.parametrize("bad", ["short", "x" * 129, "a" * 42 + "!", "é" * 43])
def test_challenge_refuses_a_malformed_verifier(bad: str) -> None:
    with pytest.raises(ValueError, match="43 to 128"):
        create_s256_challenge(bad)
