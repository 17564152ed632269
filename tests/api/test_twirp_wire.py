"""The twirp wire format itself: JSON bodies, error shapes and statuses, routing."""

from __future__ import annotations

import aiohttp
from livekit import api

from .conftest import API_KEY, API_SECRET, ApiServer


def _admin() -> dict[str, str]:
    token = api.AccessToken(API_KEY, API_SECRET).with_sip_grants(api.SIPGrants(admin=True)).to_jwt()
    return {"Authorization": f"Bearer {token}"}


async def _post(server: ApiServer, path: str, body: bytes, content_type: str) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    async with aiohttp.ClientSession() as session:
        async with session.post(
            server.url + path, data=body, headers={**_admin(), "Content-Type": content_type}
        ) as resp:
            return resp.status, resp.content_type, await resp.json(content_type=None)


async def test_json_bodies_with_camel_case_and_proto_names(api_server: ApiServer) -> None:
    status, ctype, body = await _post(
        api_server,
        "/twirp/livekit.SIP/CreateSIPInboundTrunk",
        b'{"trunk": {"name": "json", "numbers": ["+15550500"], "allowedAddresses": ["127.0.0.1"]}}',
        "application/json",
    )
    assert status == 200 and ctype == "application/json"
    assert body["name"] == "json" and body["allowedAddresses"] == ["127.0.0.1"]
    trunk_id = body["sipTrunkId"]
    status, _, body = await _post(
        api_server, "/twirp/livekit.SIP/GetSIPInboundTrunk", f'{{"sip_trunk_id": "{trunk_id}"}}'.encode(), "application/json"
    )
    assert status == 200 and body["trunk"]["numbers"] == ["+15550500"]


async def test_malformed_bodies(api_server: ApiServer) -> None:
    for body, ctype in [
        (b"{not json", "application/json"),
        (b'{"trunk": {"numbers": 5}}', "application/json"),
        (b'{"noSuchField": 1}', "application/json"),
        (b"\xff\xff\xff\xff", "application/protobuf"),
    ]:
        status, ctype_out, err = await _post(api_server, "/twirp/livekit.SIP/CreateSIPInboundTrunk", body, ctype)
        assert status == 400, body
        assert ctype_out == "application/json"
        assert err["code"] == "malformed" and err["msg"]


async def test_routing_errors(api_server: ApiServer) -> None:
    status, _, err = await _post(api_server, "/twirp/livekit.SIP/NoSuchMethod", b"{}", "application/json")
    assert (status, err["code"]) == (404, "bad_route")
    status, _, err = await _post(api_server, "/twirp/livekit.Nope/ListSIPInboundTrunk", b"{}", "application/json")
    assert (status, err["code"]) == (404, "bad_route")
    status, _, err = await _post(api_server, "/twirp/livekit.SIP/ListSIPInboundTrunk", b"{}", "text/plain")
    assert (status, err["code"]) == (404, "bad_route")
    async with aiohttp.ClientSession() as session:
        async with session.get(api_server.url + "/twirp/livekit.SIP/ListSIPInboundTrunk", headers=_admin()) as resp:
            assert resp.status == 404 and (await resp.json())["code"] == "bad_route"


async def test_call_control_without_gateway_is_unavailable(api_server: ApiServer) -> None:
    token = api.AccessToken(API_KEY, API_SECRET).with_sip_grants(api.SIPGrants(call=True)).to_jwt()
    async with aiohttp.ClientSession() as session:
        async with session.post(
            api_server.url + "/twirp/livekit.SIP/CreateSIPParticipant",
            data=b"{}",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as resp:
            assert resp.status == 503
            assert (await resp.json())["code"] == "unavailable"


async def test_oversized_body_is_a_twirp_error_not_an_internal_one(api_server: ApiServer) -> None:
    # Larger than both aiohttp's client_max_size and twirp.MAX_BODY: the caller must hear what is
    # wrong (a twirp error naming the size), not "internal server error".
    body = b'{"trunk": {"name": "' + b"x" * (5 << 20) + b'"}}'
    status, ctype, err = await _post(api_server, "/twirp/livekit.SIP/CreateSIPInboundTrunk", body, "application/json")
    assert ctype == "application/json"
    assert (status, err["code"]) == (400, "malformed"), err
    assert "too large" in err["msg"]
