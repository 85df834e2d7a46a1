"""PROTOCOL-v2 §6 from outside: owner and admins, rename, announcement, mutes,
mute-all, transfer and dissolution, each a ``system`` notice with its own seq
that never counts as unread, reaches the members live and replays by
catch-up; and every refusal with its contract error, changing nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Account, AccountFactory, RunningServer
from tests.contract import assert_error
from tidings.client import AdminClient

TOKEN = "roles-s3cret"


@pytest.fixture
async def server(make_server: Any) -> RunningServer:
    """Every test's server takes the integration API's token too."""
    found: RunningServer = await make_server(service_token=TOKEN)
    return found


def group_path(group: int, tail: str = "") -> str:
    return f"/api/v1/groups/{group}{tail}"


async def notices(account: Account, conversation: str) -> list[dict[str, Any]]:
    """The conversation's system notices as this member sees them, oldest first."""
    status, page = await account.client.request(
        "GET", f"/api/v1/conversations/{conversation}/messages?limit=200"
    )
    assert status == 200, page
    return [m for m in page["messages"] if m["kind"] == "system"]


async def entry(account: Account, conversation: str) -> dict[str, Any]:
    status, body = await account.client.request("GET", "/api/v1/conversations")
    assert status == 200, body
    return next(e for e in body["conversations"] if e["id"] == conversation)


async def test_a_group_starts_with_its_created_notice_and_late_joiners_see_their_own(
    alice: Account, bob: Account, carol: Account
) -> None:
    group = await alice.client.create_group("Hike", [bob.id])
    team = f"g:{group.id}"
    first = (await notices(bob, team))[0]
    assert first["seq"] == 1
    assert first["system"] == {
        "event": "created",
        "actor": alice.id,
        "users": [],
        "name": "Hike",
        "text": None,
    }
    assert first["body"] == 'Alice created the group "Hike"'
    sent = await alice.client.send(team, "hello")
    assert sent.seq == 2
    await alice.client.add_members(group.id, [carol.id])
    seen = await notices(carol, team)
    assert [n["system"]["event"] for n in seen] == ["members_added"]
    assert seen[0]["body"] == "Alice added Carol" and seen[0]["system"]["users"] == [carol.id]
    # Nothing before the notice that added her; nothing counts as unread.
    status, page = await carol.client.request("GET", f"/api/v1/conversations/{team}/messages")
    assert [m["seq"] for m in page["messages"]] == [3]
    carol_entry = await entry(carol, team)
    assert (carol_entry["unread"], carol_entry["last_seq"]) == (0, 3)
    assert carol_entry["last_message"]["kind"] == "system"
    bob_entry = await entry(bob, team)
    assert bob_entry["unread"] == 1  # alice's "hello"; the two notices do not count


async def test_the_owner_runs_admins_who_run_plain_members(
    alice: Account, bob: Account, carol: Account, make_account: AccountFactory
) -> None:
    dave = await make_account("dave", "Dave")
    group = await alice.client.create_group("Team", [bob.id, carol.id, dave.id])
    team = f"g:{group.id}"
    # Only the owner sets admins.
    assert_error(
        await bob.client.request("PUT", group_path(group.id, "/admins"), {"user_ids": [bob.id]}),
        403,
        "forbidden",
    )
    got = await alice.client.set_admins(group.id, [bob.id])
    assert got.admin_ids == [bob.id]
    # An admin renames, announces, adds; removes a plain member, not the owner.
    got = await bob.client.update_group(group.id, name="Team A", announcement="Sat 9:00")
    assert got.name == "Team A" and got.announcement is not None
    assert got.announcement.text == "Sat 9:00" and got.announcement.by == bob.id
    erin = await make_account("erin", "Erin")
    await bob.client.add_members(group.id, [erin.id])
    assert_error(
        await bob.client.request("DELETE", group_path(group.id, f"/members/{alice.id}")),
        403,
        "forbidden",
    )
    await bob.client.remove_member(group.id, erin.id)
    # A plain member does none of it.
    for method, tail, body in (
        ("PATCH", "", {"name": "mine"}),
        ("PUT", f"/mutes/{dave.id}", {"seconds": 60}),
        ("POST", "/members", {"user_id": erin.id}),
        ("DELETE", f"/members/{dave.id}", None),
        ("POST", "/owner", {"user_id": carol.id}),
        ("DELETE", "", None),
    ):
        answer = await carol.client.request(method, group_path(group.id, tail), body)
        assert_error(answer, 403, "forbidden")
    events = [n["system"]["event"] for n in await notices(alice, team)]
    assert events == [
        "created",
        "admins_changed",
        "renamed",
        "announcement",
        "members_added",
        "member_removed",
    ]
    now = await alice.client.group(group.id)
    assert now.name == "Team A" and now.admin_ids == [bob.id]
    assert carol.id in now.member_ids and erin.id not in now.member_ids
    # The chat list's title follows the rename.
    assert (await entry(carol, team))["title"] == "Team A"


async def test_a_muted_member_and_everyone_under_mute_all_get_403_muted(
    alice: Account, bob: Account, carol: Account
) -> None:
    group = await alice.client.create_group("Quiet", [bob.id, carol.id])
    team = f"g:{group.id}"
    await alice.client.set_admins(group.id, [bob.id])
    got = await bob.client.mute_member(group.id, carol.id, 600)
    assert got.muted_ids == [carol.id] and str(carol.id) in got.mutes
    before = (await entry(alice, team))["last_seq"]
    assert_error(
        await carol.client.request(
            "POST", f"/api/v1/conversations/{team}/messages", {"body": "let me talk"}
        ),
        403,
        "muted",
    )
    assert (await entry(alice, team))["last_seq"] == before  # nothing stored
    # Nobody mutes the owner; an admin does not mute an admin.
    assert_error(
        await bob.client.request(
            "PUT", group_path(group.id, f"/mutes/{alice.id}"), {"seconds": 60}
        ),
        403,
        "forbidden",
    )
    assert_error(
        await bob.client.request("PUT", group_path(group.id, f"/mutes/{bob.id}"), {"seconds": 60}),
        403,
        "forbidden",
    )
    assert_error(
        await bob.client.request("PUT", group_path(group.id, f"/mutes/{carol.id}"), {"seconds": 0}),
        422,
        "bad_request",
    )
    got = await bob.client.unmute_member(group.id, carol.id)
    assert got.muted_ids == []
    await carol.client.send(team, "thanks")
    # Mute all: the owner and admins still send, the rest do not.
    await alice.client.update_group(group.id, muted_all=True)
    await alice.client.send(team, "owner here")
    await bob.client.send(team, "admin here")
    assert_error(
        await carol.client.request(
            "POST", f"/api/v1/conversations/{team}/messages", {"body": "me too"}
        ),
        403,
        "muted",
    )
    await alice.client.update_group(group.id, muted_all=False)
    await carol.client.send(team, "back")
    events = [n["system"]["event"] for n in await notices(alice, team)]
    assert events == ["created", "admins_changed", "muted", "unmuted", "muted_all", "muted_all"]
    bodies = [n["body"] for n in await notices(alice, team)]
    assert bodies[2] == "Bob muted Carol for 10 minutes"
    assert bodies[4:] == ["Alice muted everyone", "Alice unmuted everyone"]


async def test_transfer_and_dissolve(alice: Account, bob: Account, carol: Account) -> None:
    group = await alice.client.create_group("Club", [bob.id, carol.id])
    team = f"g:{group.id}"
    await alice.client.set_admins(group.id, [bob.id])
    got = await alice.client.transfer_group(group.id, bob.id)
    assert got.owner_id == bob.id and got.admin_ids == []
    assert alice.id in got.member_ids
    assert_error(await alice.client.request("DELETE", group_path(group.id)), 403, "forbidden")
    await bob.client.dissolve_group(group.id)
    dissolved = await carol.client.group(group.id)
    assert dissolved.dissolved
    for sender in (alice, bob, carol):
        answer = await sender.client.request(
            "POST", f"/api/v1/conversations/{team}/messages", {"body": "anyone?"}
        )
        assert_error(answer, 403, "group_dissolved")
    assert_error(
        await bob.client.request("PATCH", group_path(group.id), {"name": "x"}),
        403,
        "group_dissolved",
    )
    # History stays readable; members may still leave.
    events = [n["system"]["event"] for n in await notices(carol, team)]
    assert events == ["created", "admins_changed", "owner_changed", "dissolved"]
    await carol.client.remove_member(group.id, carol.id)
    assert carol.id not in (await bob.client.group(group.id)).member_ids


async def test_changes_reach_the_members_live_in_seq_order_with_messages(
    alice: Account, bob: Account, carol: Account
) -> None:
    group = await alice.client.create_group("Live", [bob.id])
    team = f"g:{group.id}"
    async with await bob.client.connect() as bob_ws:
        await alice.client.send(team, "one")
        await alice.client.update_group(group.id, name="Live 2")
        await alice.client.add_members(group.id, [carol.id])
        await alice.client.send(team, "two")
        seen: list[tuple[int, str]] = []
        while len(seen) < 4:
            event: dict[str, Any] = await bob_ws.next_event()
            if event["type"] == "message":
                seen.append((event["message"]["seq"], event["message"]["kind"]))
    assert seen == [(2, "text"), (3, "system"), (4, "system"), (5, "text")]


async def test_bad_group_changes_get_their_errors_and_change_nothing(
    alice: Account, bob: Account, carol: Account
) -> None:
    group = await alice.client.create_group("Strict", [bob.id])
    team = f"g:{group.id}"
    answers = [
        (await alice.client.request("PATCH", group_path(group.id), {"colour": "red"}), 422),
        (await alice.client.request("PATCH", group_path(group.id), {"name": ""}), 422),
        (await alice.client.request("PATCH", group_path(group.id), {"muted_all": "yes"}), 422),
        (
            await alice.client.request(
                "PUT", group_path(group.id, "/admins"), {"user_ids": [carol.id]}
            ),
            422,
        ),
        (
            await alice.client.request(
                "PUT", group_path(group.id, "/admins"), {"user_ids": [alice.id]}
            ),
            422,
        ),
        (
            await alice.client.request(
                "POST", group_path(group.id, "/owner"), {"user_id": carol.id}
            ),
            404,
        ),
        (
            await alice.client.request(
                "PUT", group_path(group.id, f"/mutes/{carol.id}"), {"seconds": 60}
            ),
            404,
        ),
        (await carol.client.request("PATCH", group_path(group.id), {"name": "x"}), 403),
        (await alice.client.request("PATCH", group_path(999_999), {"name": "x"}), 404),
    ]
    for answer, status in answers:
        code = {422: "bad_request", 404: "not_found", 403: "not_member"}[status]
        assert_error(answer, status, code)
    assert [n["system"]["event"] for n in await notices(alice, team)] == ["created"]
    # A change that changes nothing stores no notice.
    await alice.client.update_group(group.id, name="Strict")
    await alice.client.set_admins(group.id, [])
    assert len(await notices(alice, team)) == 1


async def test_the_backend_runs_a_group_through_the_integration_api(
    alice: Account, bob: Account, server: RunningServer
) -> None:
    async with AdminClient(server.url, TOKEN) as service:
        await backend_runs(alice, bob, service)


async def backend_runs(alice: Account, bob: Account, service: AdminClient) -> None:
    group = await alice.client.create_group("Ops", [bob.id])
    team = f"g:{group.id}"
    got = await service.set_admins(group.id, [bob.id])
    assert got.admin_ids == [bob.id]
    got = await service.update_group(group.id, announcement="Maintenance at 2")
    assert got.announcement is not None and got.announcement.by is None
    got = await service.mute_member(group.id, bob.id, 3600)
    assert got.muted_ids == [bob.id]
    await service.dissolve_group(group.id)
    seen = await notices(alice, team)
    assert [n["system"]["actor"] for n in seen[1:]] == [None, None, None, None]
    assert seen[-1]["body"] == "The group was dissolved"
    assert seen[3]["body"] == "Bob was muted for 1 hour"


async def test_a_mute_runs_out_by_itself(alice: Account, bob: Account) -> None:
    group = await alice.client.create_group("Short", [bob.id])
    team = f"g:{group.id}"
    await alice.client.mute_member(group.id, bob.id, 1)
    path = f"/api/v1/conversations/{team}/messages"
    assert_error(await bob.client.request("POST", path, {"body": "now?"}), 403, "muted")
    await asyncio.sleep(1.2)
    assert (await alice.client.group(group.id)).muted_ids == []
    sent = await bob.client.send(team, "now")
    await bob.client.send(team, "and again")  # the lapsed guard is gone: still fine
    assert sent.body == "now"
    # No notice for a mute that ran out: created, muted, and the two messages.
    events = [n["system"]["event"] for n in await notices(alice, team)]
    assert events == ["created", "muted"]


async def test_the_owner_leaving_names_the_new_owner_and_admins_set_no_admins(
    alice: Account, bob: Account, carol: Account
) -> None:
    group = await alice.client.create_group("Handover", [bob.id, carol.id])
    team = f"g:{group.id}"
    await alice.client.set_admins(group.id, [carol.id])
    # Only the owner sets admins: an admin may not, not even to add itself more.
    answer = await carol.client.request(
        "PUT", group_path(group.id, "/admins"), {"user_ids": [bob.id, carol.id]}
    )
    assert_error(answer, 403, "forbidden")
    await alice.client.remove_member(group.id, alice.id)
    after = await bob.client.group(group.id)
    # The longest-standing member (bob joined before carol) takes the seat, not the admin.
    assert after.owner_id == bob.id and after.admin_ids == [carol.id]
    left = (await notices(carol, team))[-1]
    assert left["system"]["event"] == "member_left" and left["system"]["owner"] == bob.id
    assert left["body"] == "Alice left the group; Bob is now the owner"


async def test_a_muted_members_websocket_send_gets_the_muted_error_with_its_ref(
    alice: Account, bob: Account
) -> None:
    group = await alice.client.create_group("Socket", [bob.id])
    team = f"g:{group.id}"
    await alice.client.mute_member(group.id, bob.id, 600)
    async with await bob.client.connect() as ws:
        answer = await ws.request({"type": "send", "conversation": team, "body": "hi", "ref": 3})
    assert answer["type"] == "error" and (answer["code"], answer["ref"]) == ("muted", 3)
    assert [n["system"]["event"] for n in await notices(alice, team)] == ["created", "muted"]
    status, page = await alice.client.request("GET", f"/api/v1/conversations/{team}/messages")
    assert [m["kind"] for m in page["messages"]] == ["system", "system"]  # nothing stored
