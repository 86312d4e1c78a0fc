"""RFC 9421 request signatures: the exact signature base, and every way verification must fail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import pytest
from http_message_signatures import HTTPMessageVerifier, algorithms
from http_message_signatures.resolvers import MappingKeyResolver

from fleetmeter.signing import httpsig
from fleetmeter.signing.httpsig import SignatureError, sign_request, verify_request

URL = "https://portal.example:8443/api/v1/direct/batches"
BODY = b"\x28\xb5\x2f\xfd compressed batch bytes"
KEY_ID = "fmk_0123456789abcdef01234567"
SECRET = "fms_dGhpcyBpcyBhIHRlc3Qgc2VjcmV0IG9mIDMyIGJ5dGVz"
CREATED = 1_772_438_400  # 2026-03-02T08:00:00Z
NONCE = "bm9uY2Utb2YtMTYtYnl0ZXM"


def _signed(**overrides: object) -> dict[str, str]:
    kw: dict[str, object] = {
        "method": "POST",
        "url": URL,
        "body": BODY,
        "key_id": KEY_ID,
        "secret": SECRET,
        "created": CREATED,
        "nonce": NONCE,
    }
    kw.update(overrides)
    return sign_request(**kw)  # type: ignore[arg-type]


def _verify(
    headers: dict[str, str],
    *,
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    secrets: list[str] | None = None,
    now: float = CREATED + 10,
    window_s: int = 300,
) -> httpsig.VerifiedSignature:
    return verify_request(
        method=method,
        url=url,
        headers=list(headers.items()),
        body=body,
        valid_secrets=secrets if secrets is not None else [SECRET],
        now=now,
        window_s=window_s,
    )


def _reason(headers: dict[str, str], **kw: object) -> str:
    with pytest.raises(SignatureError) as info:
        _verify(headers, **kw)  # type: ignore[arg-type]
    return info.value.reason


# --------------------------------------------------------------------------- the profile


def test_signature_base_is_exactly_rfc9421_section_2_5() -> None:
    """Rebuild the signature base by hand from the RFC's rules and HMAC it ourselves."""
    headers = _signed()
    digest = base64.b64encode(hashlib.sha256(BODY).digest()).decode()
    assert headers["Content-Digest"] == f"sha-256=:{digest}:"

    params = (
        '("@method" "@path" "@authority" "content-digest")'
        f';created={CREATED};keyid="{KEY_ID}";alg="hmac-sha256";nonce="{NONCE}"'
        ';tag="fleetmeter-direct"'
    )
    assert headers["Signature-Input"] == f"fm={params}"
    base = (
        '"@method": POST\n'
        '"@path": /api/v1/direct/batches\n'
        '"@authority": portal.example:8443\n'
        f'"content-digest": sha-256=:{digest}:\n'
        f'"@signature-params": {params}'
    )  # no trailing newline (§2.5)
    mac = hmac.new(SECRET.encode(), base.encode("ascii"), hashlib.sha256).digest()
    assert headers["Signature"] == f"fm=:{base64.b64encode(mac).decode()}:"


def test_default_port_is_not_part_of_the_authority() -> None:
    headers = _signed(url="https://portal.example:443/api/v1/direct/batches")
    # §2.2.3: the authority is normalised, so the same request to :443 and to no port verify.
    _verify(headers, url="https://portal.example/api/v1/direct/batches")


def test_rfc9421_hmac_test_vector_b_2_5() -> None:
    """The library we build on reproduces the RFC's own HMAC-SHA256 example (Appendix B.2.5)."""

    class Request:
        method = "POST"
        url = "https://example.com/foo?param=Value&Pet=dog"
        headers = {
            "Host": "example.com",
            "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
            "Content-Type": "application/json",
            "Signature-Input": 'sig-b25=("date" "@authority" "content-type")'
            ';created=1618884473;keyid="test-shared-secret"',
            "Signature": "sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:",
        }

    key = base64.b64decode(
        "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="
    )
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.HMAC_SHA256,
        key_resolver=MappingKeyResolver(public_keys={"test-shared-secret": key}, private_keys={}),
    )
    (result,) = verifier.verify(Request(), max_age=None)
    assert result.parameters["keyid"] == "test-shared-secret"


def test_a_genuine_request_verifies() -> None:
    verified = _verify(_signed())
    assert (verified.key_id, verified.nonce, verified.secret_index) == (KEY_ID, NONCE, 0)
    assert int(verified.created.timestamp()) == CREATED


def test_the_secret_appears_in_no_header() -> None:
    headers = _signed()
    for value in headers.values():
        assert SECRET not in value
    for name in ("Signature", "Content-Digest"):
        raw = base64.b64decode(headers[name].split(":")[1])
        assert SECRET.encode() not in raw


def test_each_request_gets_a_fresh_nonce() -> None:
    first = sign_request(method="POST", url=URL, body=BODY, key_id=KEY_ID, secret=SECRET)
    second = sign_request(method="POST", url=URL, body=BODY, key_id=KEY_ID, secret=SECRET)
    nonce = re.compile(r'nonce="([^"]+)"')
    n1 = nonce.search(first["Signature-Input"])
    n2 = nonce.search(second["Signature-Input"])
    assert n1 and n2 and n1.group(1) != n2.group(1) and len(n1.group(1)) >= 16


# --------------------------------------------------------------------------- tampering


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"method": "PUT"}, "bad_signature"),
        ({"url": "https://portal.example:8443/api/v1/ingest/batches"}, "bad_signature"),
        ({"url": "https://evil.example:8443/api/v1/direct/batches"}, "bad_signature"),
        ({"url": "https://portal.example:9443/api/v1/direct/batches"}, "bad_signature"),
        ({"body": BODY + b"x"}, "digest_mismatch"),
        ({"body": b""}, "digest_mismatch"),
        ({"secrets": ["fms_some-other-secret"]}, "bad_signature"),
    ],
    ids=["method", "path", "authority", "port", "body", "empty-body", "secret"],
)
def test_tampering_with_a_covered_component_fails(change: dict[str, object], reason: str) -> None:
    assert _reason(_signed(), **change) == reason


def test_a_recomputed_digest_for_a_tampered_body_fails_the_signature() -> None:
    headers = _signed()
    tampered = BODY + b"!"
    headers["Content-Digest"] = httpsig.content_digest(tampered)
    assert _reason(headers, body=tampered) == "bad_signature"


def test_changed_signature_parameters_fail() -> None:
    headers = _signed()
    for old, new in ((f"created={CREATED}", f"created={CREATED + 1}"), (NONCE, "A" * 22)):
        changed = dict(headers, **{"Signature-Input": headers["Signature-Input"].replace(old, new)})
        assert _reason(changed) == "bad_signature"


def test_signature_bytes_flipped_fail() -> None:
    headers = _signed()
    sig = bytearray(base64.b64decode(headers["Signature"][4:-1]))
    sig[0] ^= 1
    headers["Signature"] = f"fm=:{base64.b64encode(bytes(sig)).decode()}:"
    assert _reason(headers) == "bad_signature"


@pytest.mark.parametrize("missing", ["Signature", "Signature-Input", "Content-Digest"])
def test_missing_headers_fail(missing: str) -> None:
    headers = _signed()
    del headers[missing]
    assert _reason(headers) == "missing"


def test_wrong_profile_fails() -> None:
    headers = _signed()
    no_tag = headers["Signature-Input"].replace(';tag="fleetmeter-direct"', "")
    assert _reason(dict(headers, **{"Signature-Input": no_tag})) == "wrong_profile"
    other_alg = headers["Signature-Input"].replace("hmac-sha256", "ed25519")
    assert _reason(dict(headers, **{"Signature-Input": other_alg})) == "wrong_profile"
    no_nonce = headers["Signature-Input"].replace(f';nonce="{NONCE}"', "")
    assert _reason(dict(headers, **{"Signature-Input": no_nonce})) == "wrong_profile"
    fewer = headers["Signature-Input"].replace(' "content-digest"', "")
    assert _reason(dict(headers, **{"Signature-Input": fewer})) == "wrong_profile"
    assert _reason(dict(headers, **{"Signature-Input": "fm=garbage(("})) == "malformed"


# --------------------------------------------------------------------------- time and keys


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(-300, True), (300, True), (-301, False), (301, False), (-86_400, False)],
)
def test_created_must_be_within_the_window(offset: int, ok: bool) -> None:
    headers = _signed()
    now = CREATED - offset  # created is `offset` seconds from the verifier's clock
    if ok:
        _verify(headers, now=now)
    else:
        assert _reason(headers, now=now) == "created_out_of_window"


def test_window_is_configurable() -> None:
    headers = _signed()
    assert _reason(headers, now=CREATED + 61, window_s=60) == "created_out_of_window"
    _verify(headers, now=CREATED + 59, window_s=60)


def test_previous_secret_verifies_during_overlap() -> None:
    old = _signed(secret="fms_old-secret-still-in-the-device")
    verified = _verify(old, secrets=[SECRET, "fms_old-secret-still-in-the-device"])
    assert verified.secret_index == 1
    assert _reason(old, secrets=[SECRET]) == "bad_signature"
    assert _reason(old, secrets=[]) == "unknown_key"


def test_key_ids_and_nonces_must_be_plain_tokens() -> None:
    with pytest.raises(ValueError, match="key id"):
        _signed(key_id='bad"id')
    with pytest.raises(ValueError, match="nonce"):
        _signed(nonce="")
    short = _signed(nonce="short")
    assert _reason(short) == "malformed"


def test_read_signature_input_gives_the_claimed_key() -> None:
    claimed = httpsig.read_signature_input(_signed().items())
    assert (claimed.key_id, claimed.nonce, claimed.created) == (KEY_ID, NONCE, CREATED)
