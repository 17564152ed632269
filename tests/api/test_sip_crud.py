"""SIP trunk and dispatch-rule management through the official livekit-api client."""

from __future__ import annotations

import aiohttp
import pytest
from livekit import api
from livekit.api.twirp_client import TwirpClient, TwirpError
from livekit.protocol import models
from livekit.protocol import sip as sip_pb

from roomtone.api import install
from roomtone.rtc.tokens import TokenVerifier
from roomtone.telephony.service import Telephony

from .conftest import API_KEY, API_SECRET, ApiServer, start_server


def lk(server: ApiServer) -> api.LiveKitAPI:
    return api.LiveKitAPI(server.url, API_KEY, API_SECRET)


async def get_inbound(client: api.LiveKitAPI, trunk_id: str) -> sip_pb.GetSIPInboundTrunkResponse:
    """livekit-api 1.2 has no wrapper for GetSIPInboundTrunk; use its twirp client the same way it would."""
    return await client.sip._client.request(
        "SIP", "GetSIPInboundTrunk", sip_pb.GetSIPInboundTrunkRequest(sip_trunk_id=trunk_id),
        client.sip._admin_headers(), sip_pb.GetSIPInboundTrunkResponse,
    )


async def get_outbound(client: api.LiveKitAPI, trunk_id: str) -> sip_pb.GetSIPOutboundTrunkResponse:
    return await client.sip._client.request(
        "SIP", "GetSIPOutboundTrunk", sip_pb.GetSIPOutboundTrunkRequest(sip_trunk_id=trunk_id),
        client.sip._admin_headers(), sip_pb.GetSIPOutboundTrunkResponse,
    )


async def test_inbound_trunk_create_get_list_update_delete(api_server: ApiServer) -> None:
    async with lk(api_server) as client:
        created = await client.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(
                trunk=api.SIPInboundTrunkInfo(
                    name="main", numbers=["+15550100"], allowed_addresses=["127.0.0.0/8"], metadata="m1"
                )
            )
        )
        assert created.sip_trunk_id.startswith("ST_")
        assert created.created_at.seconds > 0
        got = await get_inbound(client, created.sip_trunk_id)
        assert got.trunk == created

        second = await client.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(
                trunk=api.SIPInboundTrunkInfo(name="other", numbers=["+15550199"], auth_username="u", auth_password="p")
            )
        )
        listed = await client.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        assert {t.sip_trunk_id for t in listed.items} == {created.sip_trunk_id, second.sip_trunk_id}
        by_number = await client.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest(numbers=["15550199"]))
        assert [t.sip_trunk_id for t in by_number.items] == [second.sip_trunk_id]
        paged = await client.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest(page=models.Pagination(limit=1)))
        assert len(paged.items) == 1
        rest = await client.sip.list_inbound_trunk(
            api.ListSIPInboundTrunkRequest(page=models.Pagination(after_id=paged.items[0].sip_trunk_id))
        )
        assert len(rest.items) == 1 and rest.items[0].sip_trunk_id != paged.items[0].sip_trunk_id

        updated = await client.sip.update_inbound_trunk_fields(
            created.sip_trunk_id,
            numbers=models.ListUpdate(add=["+15550101"]),
            name="renamed",
        )
        assert updated.name == "renamed"
        assert list(updated.numbers) == ["+15550100", "+15550101"]
        assert updated.metadata == "m1"  # untouched field kept
        replaced = await client.sip.update_inbound_trunk(
            created.sip_trunk_id, api.SIPInboundTrunkInfo(name="replaced", numbers=["+15550102"])
        )
        assert replaced.name == "replaced" and list(replaced.numbers) == ["+15550102"] and replaced.metadata == ""
        assert replaced.created_at == created.created_at

        deleted = await client.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=created.sip_trunk_id))
        assert deleted.sip_trunk_id == created.sip_trunk_id
        assert deleted.kind == sip_pb.SIPTrunkInfo.TRUNK_INBOUND
        with pytest.raises(TwirpError) as err:
            await get_inbound(client, created.sip_trunk_id)
        assert err.value.code == "not_found" and err.value.status == 404


async def test_outbound_trunk_crud_and_validation(api_server: ApiServer) -> None:
    async with lk(api_server) as client:
        trunk = await client.sip.create_outbound_trunk(
            api.CreateSIPOutboundTrunkRequest(
                trunk=api.SIPOutboundTrunkInfo(
                    name="out", address="127.0.0.1:25999", numbers=["+15550200"], auth_username="a", auth_password="b"
                )
            )
        )
        got = await get_outbound(client, trunk.sip_trunk_id)
        assert got.trunk.address == "127.0.0.1:25999" and got.trunk.auth_password == "b"
        updated = await client.sip.update_outbound_trunk_fields(trunk.sip_trunk_id, address="127.0.0.2:5060")
        assert updated.address == "127.0.0.2:5060" and list(updated.numbers) == ["+15550200"]
        listed = await client.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())
        assert [t.sip_trunk_id for t in listed.items] == [trunk.sip_trunk_id]
        # inbound-only lookups do not see outbound trunks
        with pytest.raises(TwirpError) as err:
            await get_inbound(client, trunk.sip_trunk_id)
        assert err.value.code == "not_found"

        for bad, words in [
            (api.SIPOutboundTrunkInfo(name="x", numbers=["+1"]), "address"),
            (api.SIPOutboundTrunkInfo(address="sip:h@x", numbers=["+1"]), "address"),
            (api.SIPOutboundTrunkInfo(address="h.example"), "numbers"),
            (api.SIPOutboundTrunkInfo(address="h.example", numbers=["+1"], auth_username="only"), "auth_password"),
        ]:
            with pytest.raises(TwirpError) as err:
                await client.sip.create_outbound_trunk(api.CreateSIPOutboundTrunkRequest(trunk=bad))
            assert err.value.code == "invalid_argument" and err.value.status == 400
            assert words in err.value.message
        deleted = await client.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk.sip_trunk_id))
        assert deleted.kind == sip_pb.SIPTrunkInfo.TRUNK_OUTBOUND
        with pytest.raises(TwirpError) as err:
            await client.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk.sip_trunk_id))
        assert err.value.code == "not_found"


async def test_inbound_trunk_validation_and_conflicts(api_server: ApiServer) -> None:
    async with lk(api_server) as client:
        with pytest.raises(TwirpError) as err:
            await client.sip.create_inbound_trunk(api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo()))
        assert err.value.code == "invalid_argument" and "for security" in err.value.message
        with pytest.raises(TwirpError) as err:
            await client.sip.create_inbound_trunk(
                api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(allowed_addresses=["10.0.0.0/33"]))
            )
        assert err.value.code == "invalid_argument" and "10.0.0.0/33" in err.value.message
        first = await client.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(numbers=["+15550300"]))
        )
        with pytest.raises(TwirpError) as err:
            await client.sip.create_inbound_trunk(
                api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(numbers=["15550300"]))
            )
        assert err.value.code == "invalid_argument" and first.sip_trunk_id in err.value.message
        with pytest.raises(TwirpError) as err:
            await client.sip.create_inbound_trunk(
                api.CreateSIPInboundTrunkRequest(
                    trunk=api.SIPInboundTrunkInfo(sip_trunk_id="ST_mine", numbers=["+15550301"])
                )
            )
        assert err.value.code == "invalid_argument"


async def test_dispatch_rules_crud_conflicts_and_legacy_fields(api_server: ApiServer) -> None:
    async with lk(api_server) as client:
        direct = await client.sip.create_dispatch_rule(
            api.CreateSIPDispatchRuleRequest(
                dispatch_rule=api.SIPDispatchRuleInfo(
                    name="direct",
                    rule=api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name="lobby", pin="1234")),
                    trunk_ids=["ST_a"],
                    attributes={"team": "x"},
                )
            )
        )
        assert direct.sip_dispatch_rule_id.startswith("SDR_")
        # deprecated flat request fields still work
        legacy = await client.sip.create_dispatch_rule(
            api.CreateSIPDispatchRuleRequest(
                rule=api.SIPDispatchRule(dispatch_rule_individual=api.SIPDispatchRuleIndividual(room_prefix="call")),
                name="legacy",
                hide_phone_number=True,
            )
        )
        assert legacy.name == "legacy" and legacy.hide_phone_number
        assert legacy.rule.WhichOneof("rule") == "dispatch_rule_individual"

        with pytest.raises(TwirpError) as err:  # same trunk + number + PIN as `direct`
            await client.sip.create_dispatch_rule(
                api.CreateSIPDispatchRuleRequest(
                    dispatch_rule=api.SIPDispatchRuleInfo(
                        rule=api.SIPDispatchRule(dispatch_rule_callee=api.SIPDispatchRuleCallee(pin="1234")),
                        trunk_ids=["ST_a"],
                    )
                )
            )
        assert err.value.code == "invalid_argument" and direct.sip_dispatch_rule_id in err.value.message
        for bad in [
            api.SIPDispatchRuleInfo(name="no rule"),
            api.SIPDispatchRuleInfo(rule=api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect())),
            api.SIPDispatchRuleInfo(
                rule=api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name="r", pin="12a"))
            ),
        ]:
            with pytest.raises(TwirpError) as err:
                await client.sip.create_dispatch_rule(api.CreateSIPDispatchRuleRequest(dispatch_rule=bad))
            assert err.value.code == "invalid_argument"

        listed = await client.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
        assert {r.sip_dispatch_rule_id for r in listed.items} == {direct.sip_dispatch_rule_id, legacy.sip_dispatch_rule_id}
        by_trunk = await client.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest(trunk_ids=["ST_zzz"]))
        assert [r.sip_dispatch_rule_id for r in by_trunk.items] == [legacy.sip_dispatch_rule_id]  # wildcard rule

        updated = await client.sip.update_dispatch_rule_fields(
            direct.sip_dispatch_rule_id, trunk_ids=models.ListUpdate(remove=["ST_a"], add=["ST_b"]), name="moved"
        )
        assert list(updated.trunk_ids) == ["ST_b"] and updated.name == "moved"
        assert updated.attributes["team"] == "x" and updated.rule.dispatch_rule_direct.pin == "1234"

        deleted = await client.sip.delete_dispatch_rule(
            api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=legacy.sip_dispatch_rule_id)
        )
        assert deleted.sip_dispatch_rule_id == legacy.sip_dispatch_rule_id
        with pytest.raises(TwirpError) as err:
            await client.sip.delete_dispatch_rule(
                api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=legacy.sip_dispatch_rule_id)
            )
        assert err.value.code == "not_found"


async def test_records_survive_restart(api_server: ApiServer) -> None:
    async with lk(api_server) as client:
        trunk = await client.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(
                trunk=api.SIPInboundTrunkInfo(numbers=["+15550400"], headers_to_attributes={"X-Foo": "foo"})
            )
        )
        rule = await client.sip.create_dispatch_rule(
            api.CreateSIPDispatchRuleRequest(
                dispatch_rule=api.SIPDispatchRuleInfo(
                    rule=api.SIPDispatchRule(dispatch_rule_direct=api.SIPDispatchRuleDirect(room_name="r")),
                )
            )
        )
    # a second server process-equivalent on the same file
    telephony = Telephony.open(api_server.db_path)
    app = aiohttp.web.Application()
    install(app, verifier=TokenVerifier({API_KEY: API_SECRET}), telephony=telephony)
    server = await start_server(app)
    try:
        async with api.LiveKitAPI(f"http://127.0.0.1:{server.port}", API_KEY, API_SECRET) as client:
            got = await get_inbound(client, trunk.sip_trunk_id)
            assert got.trunk == trunk
            rules = await client.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
            assert list(rules.items) == [rule]
    finally:
        await server.close()
        telephony.close()


def _token(video: api.VideoGrants | None = None, sip: api.SIPGrants | None = None, secret: str = API_SECRET) -> str:
    token = api.AccessToken(API_KEY, secret)
    if video is not None:
        token = token.with_grants(video)
    if sip is not None:
        token = token.with_sip_grants(sip)
    return token.to_jwt()


@pytest.mark.parametrize(
    ("method", "request_msg", "response_cls", "video", "sip", "code"),
    [
        ("ListSIPInboundTrunk", api.ListSIPInboundTrunkRequest(), api.ListSIPInboundTrunkResponse,
         None, api.SIPGrants(call=True), "permission_denied"),
        ("CreateSIPDispatchRule", api.CreateSIPDispatchRuleRequest(), api.SIPDispatchRuleInfo,
         api.VideoGrants(room_admin=True, room="r", room_create=True), None, "permission_denied"),
        ("CreateSIPParticipant", api.CreateSIPParticipantRequest(), api.SIPParticipantInfo,
         None, api.SIPGrants(admin=True), "permission_denied"),
        ("ListSIPOutboundTrunk", api.ListSIPOutboundTrunkRequest(), api.ListSIPOutboundTrunkResponse,
         None, None, "permission_denied"),
    ],
)
async def test_wrong_grants_are_refused(
    api_server: ApiServer, method, request_msg, response_cls, video, sip, code  # type: ignore[no-untyped-def]
) -> None:
    async with aiohttp.ClientSession() as session:
        client = TwirpClient(session, api_server.url, "livekit")
        headers = {"Authorization": f"Bearer {_token(video, sip)}"}
        with pytest.raises(TwirpError) as err:
            await client.request("SIP", method, request_msg, headers, response_cls)
    assert err.value.code == code and err.value.status == 403


async def test_bad_tokens_are_unauthenticated(api_server: ApiServer) -> None:
    async with api.LiveKitAPI(api_server.url, API_KEY, "the-wrong-secret-xxxxxxxxxxxxxxxxxxxx") as client:
        with pytest.raises(TwirpError) as err:
            await client.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    assert err.value.code == "unauthenticated" and err.value.status == 401
    async with api.LiveKitAPI(api_server.url, "APIunknown", API_SECRET) as client:
        with pytest.raises(TwirpError) as err:
            await client.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
    assert err.value.code == "unauthenticated" and "APIunknown" in err.value.message
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{api_server.url}/twirp/livekit.SIP/ListSIPInboundTrunk",
            data=b"",
            headers={"Content-Type": "application/protobuf"},
        ) as resp:
            assert resp.status == 401
            assert (await resp.json())["code"] == "unauthenticated"
