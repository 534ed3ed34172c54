"""Webhooks: URL secrets, HMAC signatures (GitHub, bare hex, Stripe) with a replay window, and
the per-hook token bucket on a fake clock."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from runyard.triggers.webhook import (
    RateLimiter,
    SignatureConfig,
    SignatureError,
    hash_hook_token,
    looks_like_hook_token,
    new_hook_token,
    sign,
    token_matches,
    verify_signature,
)

BODY = b'{"action": "opened", "number": 7}'
SECRET = "whsec_test"
NOW = 1_717_000_000


def code_of(config: SignatureConfig, headers: dict[str, str], body: bytes = BODY, *, now: float = NOW) -> str:
    with pytest.raises(SignatureError) as err:
        verify_signature(config, SECRET, headers, body, now=now)
    return err.value.code


def test_hook_tokens_are_long_random_and_stored_hashed() -> None:
    tokens = {new_hook_token() for _ in range(200)}
    assert len(tokens) == 200
    token = tokens.pop()
    assert looks_like_hook_token(token) and len(token) >= 40
    assert token.replace("_", "").replace("-", "").isalnum()  # URL-safe
    stored = hash_hook_token(token)
    assert stored != token and len(stored) == 64
    assert token_matches(token, stored) and not token_matches(new_hook_token(), stored)
    for junk in ("", "123", "rwh_short", token + "x", "../" + token[3:]):
        assert not looks_like_hook_token(junk)


def test_github_style_signature() -> None:
    config = SignatureConfig()  # X-Hub-Signature-256: sha256=<hex>
    good = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    verify_signature(config, SECRET, {"X-Hub-Signature-256": good}, BODY)
    verify_signature(config, SECRET, {"x-hub-signature-256": good.upper().replace("SHA256=", "sha256=")}, BODY)
    assert sign(config, SECRET, BODY) == {"X-Hub-Signature-256": good}
    assert code_of(config, {"X-Hub-Signature-256": good}, BODY + b" ") == "invalid_signature"  # body changed
    assert code_of(config, {"X-Hub-Signature-256": "sha1=" + good[7:]}) == "invalid_signature"
    assert code_of(config, {"X-Hub-Signature-256": "sha256=nothex"}) == "invalid_signature"
    assert code_of(config, {"X-Hub-Signature-256": good[:-1]}) == "invalid_signature"
    assert code_of(config, {"X-Hub-Signature-256": "x" * 10_000}) == "invalid_signature"
    assert code_of(config, {}) == "missing_signature"
    assert code_of(config, {"X-Hub-Signature-256": ""}) == "missing_signature"
    with pytest.raises(SignatureError, match="does not match"):
        verify_signature(config, "another secret", {"X-Hub-Signature-256": good}, BODY)


def test_sha1_bare_hex_and_rotated_secrets() -> None:
    config = SignatureConfig(header="X-Signature", algorithm="sha1", format="hex")
    digest = hmac.new(b"old", BODY, hashlib.sha1).hexdigest()
    verify_signature(config, ["new", "old"], {"X-Signature": digest}, BODY)
    with pytest.raises(SignatureError):
        verify_signature(config, ["new"], {"X-Signature": digest}, BODY)
    with pytest.raises(ValueError):
        SignatureConfig(algorithm="md5")
    with pytest.raises(ValueError):
        SignatureConfig(header="Bad Header\r\nX: y")
    with pytest.raises(ValueError):
        verify_signature(config, "", {"X-Signature": digest}, BODY)


def test_timestamp_header_replay_window() -> None:
    config = SignatureConfig(header="X-Signature", format="hex", timestamp_header="X-Timestamp", tolerance_s=300)
    headers = sign(config, SECRET, BODY, timestamp=NOW)
    assert set(headers) == {"X-Signature", "X-Timestamp"}
    verify_signature(config, SECRET, headers, BODY, now=NOW + 299)
    verify_signature(config, SECRET, headers, BODY, now=NOW - 299)  # modest clock skew
    assert code_of(config, headers, now=NOW + 301) == "signature_expired"
    assert code_of(config, headers, now=NOW - 1000) == "signature_expired"
    # the timestamp is signed: moving it forward to get back into the window breaks the HMAC
    assert code_of(config, {**headers, "X-Timestamp": str(NOW + 600)}, now=NOW + 600) == "invalid_signature"
    assert code_of(config, {"X-Signature": headers["X-Signature"]}) == "missing_signature"
    assert code_of(config, {**headers, "X-Timestamp": "yesterday"}) == "invalid_signature"


def test_stripe_style_signature() -> None:
    config = SignatureConfig(header="Stripe-Signature", format="stripe", tolerance_s=300)
    v1 = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    header = f"t={NOW},v1={v1},v0=deadbeef"
    verify_signature(config, SECRET, {"Stripe-Signature": header}, BODY, now=NOW + 10)
    assert sign(config, SECRET, BODY, timestamp=NOW) == {"Stripe-Signature": f"t={NOW},v1={v1}"}
    # several v1 values (the sender rotating secrets): any one matching is enough
    verify_signature(config, SECRET, {"Stripe-Signature": f"t={NOW},v1={'0' * 64},v1={v1}"}, BODY, now=NOW)
    assert code_of(config, {"Stripe-Signature": header}, now=NOW + 301) == "signature_expired"
    assert code_of(config, {"Stripe-Signature": f"t={NOW + 1},v1={v1}"}) == "invalid_signature"
    assert code_of(config, {"Stripe-Signature": f"v1={v1}"}) == "invalid_signature"
    assert code_of(config, {"Stripe-Signature": f"t={NOW}"}) == "invalid_signature"
    assert code_of(config, {}) == "missing_signature"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_token_bucket_per_hook() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=2, burst=5, clock=clock)
    assert [limiter.allow("hook-a") for _ in range(6)] == [True] * 5 + [False]
    decision = limiter.check("hook-a")
    assert not decision.allowed and decision.retry_after_s == pytest.approx(0.5)
    assert limiter.allow("hook-b")  # buckets are per hook
    clock.now += 0.5
    assert limiter.allow("hook-a") and not limiter.allow("hook-a")
    clock.now += 100  # refills up to the burst, not beyond
    assert [limiter.allow("hook-a") for _ in range(6)] == [True] * 5 + [False]
    clock.now -= 50  # a clock going backwards refills nothing
    assert not limiter.allow("hook-a")
    # a hook's own limit
    assert [limiter.allow("hook-c", rate_per_s=1, burst=1) for _ in range(2)] == [True, False]
    limiter.forget("hook-a")
    assert limiter.allow("hook-a")


def test_rate_limiter_bounded_memory() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate_per_s=1, burst=1, clock=clock, max_keys=3)
    for key in "abcd":
        assert limiter.allow(key)
    assert len(limiter._buckets) == 3
    assert not limiter.allow("d")


# -- replay keys and payload mappings ----------------------------------------------------------


def test_a_timestamped_signature_has_a_replay_key_independent_of_its_spelling() -> None:
    from runyard.triggers.webhook import VerifiedSignature

    config = SignatureConfig(header="Stripe-Signature", format="stripe")
    value = sign(config, SECRET, BODY, timestamp=NOW)["Stripe-Signature"]
    digest = value.split("v1=", 1)[1]
    keys = {verify_signature(config, SECRET, {"Stripe-Signature": v}, BODY, now=NOW).replay_key
            for v in (value, f"t={NOW}, v1={digest.upper()}", f"{value},v1={'0' * 64}", f"v1={'1' * 64},{value}")}
    assert len(keys) == 1 and None not in keys
    verified = verify_signature(config, SECRET, {"Stripe-Signature": value}, BODY, now=NOW)
    assert verified == VerifiedSignature(NOW, digest) and verified.expires_at(300) == NOW + 300
    # another timestamp or another body: another key
    later = sign(config, SECRET, BODY, timestamp=NOW + 1)
    assert verify_signature(config, SECRET, later, BODY, now=NOW).replay_key not in keys
    # with a timestamp header too; without a timestamp there is no key
    ts_config = SignatureConfig(header="X-Sig", format="hex", timestamp_header="X-Ts")
    assert verify_signature(ts_config, SECRET, sign(ts_config, SECRET, BODY, timestamp=NOW), BODY,
                            now=NOW).replay_key is not None
    plain = verify_signature(SignatureConfig(), SECRET, sign(SignatureConfig(), SECRET, BODY), BODY)
    assert plain.replay_key is None and plain.expires_at(300) is None


def test_mappings_are_checked_and_rendered() -> None:
    from runyard.triggers.webhook import MappingError, check_mapping, render_mapping

    mapping = {"who": "${{ inputs.body.user }}", "raw": "${{ inputs.body.items }}", "n": 3,
               "nested": [{"event": "gh-${{ inputs.headers['x-event'] }}"}], "q": "${{ default(inputs.query.q, '') }}",
               "all": "${{ len(inputs) }}"}
    assert check_mapping(mapping) is mapping
    request = {"body": {"user": "u", "items": [1, 2]}, "headers": {"x-event": "push"}, "query": {}}
    assert render_mapping(mapping, request) == {"who": "u", "raw": [1, 2], "n": 3, "nested": [{"event": "gh-push"}],
                                                "q": "", "all": 3}
    for bad, field, column in (([], "mapping", None), ({"a": "${{ 1 + }}"}, "mapping.a", 9),
                               ({"a": ["${{ steps.x.output }}"]}, "mapping.a[0]", 5),
                               ({"a": "${{ inputs.files }}"}, "mapping.a", 5),
                               ({"a": "${{ x }}"}, "mapping.a", 5), ({"a": "x" * 70_000}, "mapping", None)):
        with pytest.raises(MappingError) as err:
            check_mapping(bad)
        assert (err.value.code, err.value.field, err.value.column) == ("invalid_mapping", field, column), bad
    for body, field in (({}, "mapping.who"), ({"user": "u", "items": 1}, "mapping.raw")):
        with pytest.raises(MappingError) as err:
            render_mapping({"who": "${{ inputs.body.user }}", "raw": "${{ len(inputs.body.items) }}"},
                           {"body": body, "headers": {}, "query": {}})
        assert err.value.code == "mapping_failed" and err.value.field == field
    # the evaluation is bounded
    with pytest.raises(MappingError) as err:
        render_mapping({"s": "${{ inputs.body.s + inputs.body.s }}"},
                       {"body": {"s": "x" * 600_000}, "headers": {}, "query": {}})
    assert err.value.code == "mapping_failed"
