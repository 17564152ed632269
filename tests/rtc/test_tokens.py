import time

import jwt
import pytest
from livekit import api

from roomtone.rtc.tokens import TokenError, TokenVerifier, make_token

KEY, SECRET = "APIkey", "s" * 32


def sdk_token(**grants):
    return api.AccessToken(KEY, SECRET).with_identity("alice").with_grants(api.VideoGrants(**grants)).to_jwt()


def test_official_sdk_token_verifies_with_grants():
    claims = TokenVerifier({KEY: SECRET}).verify(sdk_token(room_join=True, room="r1", can_publish_data=False))
    assert claims.identity == "alice"
    assert claims.video.room_join and claims.video.room == "r1"
    assert claims.video.can_publish_data is False
    assert claims.video.can_subscribe is True


@pytest.mark.parametrize(
    "token,needle",
    [
        (None, "no authorization token"),
        ("garbage", "invalid authorization token"),
        (make_token("other", SECRET, "a", video={}), "invalid API key"),
        (make_token(KEY, "x" * 32, "a", video={}), "signature is invalid"),
        (make_token(KEY, SECRET, "a", video={}, now=0, ttl=60), "expired"),
        (make_token(KEY, SECRET, "a", video={}, nbf_shift=0, now=4e9), "not valid yet"),
    ],
)
def test_bad_tokens_refused(token, needle):
    with pytest.raises(TokenError, match=needle) as info:
        TokenVerifier({KEY: SECRET}).verify(token)
    assert info.value.status == 401


@pytest.mark.parametrize(
    "claims,needle",
    [
        ({"video": "x"}, "video grant must be an object"),
        ({"sip": 5}, "sip grant must be an object"),
        ({"video": {"canPublishSources": 5}}, "canPublishSources must be a list"),
        ({"attributes": ["a"]}, "attributes must be an object"),
    ],
)
def test_signed_token_with_wrong_shapes_is_a_token_error(claims, needle):
    now = int(time.time())
    token = jwt.encode({"iss": KEY, "sub": "mallory", "nbf": now, "exp": now + 60, **claims}, SECRET, algorithm="HS256")
    with pytest.raises(TokenError, match=needle) as info:
        TokenVerifier({KEY: SECRET}).verify(token)
    assert info.value.status == 401
