"""Conversation ids: one spelling per conversation."""

from __future__ import annotations

import pytest

from tidings.ids import (
    GroupId,
    GroupRef,
    PrivateRef,
    UserId,
    group_conversation,
    parse_conversation,
)


def test_a_private_id_names_both_users_smaller_first() -> None:
    ref = parse_conversation("p:3-17")
    assert isinstance(ref, PrivateRef)
    assert (ref.low, ref.high) == (3, 17)
    assert ref.peer_of(UserId(3)) == 17 and ref.peer_of(UserId(17)) == 3


def test_a_group_id_names_the_group() -> None:
    ref = parse_conversation("g:5")
    assert isinstance(ref, GroupRef) and ref.group == 5
    assert group_conversation(GroupId(5)) == "g:5"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "p:17-3",
        "p:3-3",
        "p:0-3",
        "p:03-17",
        "p:3-",
        "g:",
        "g:0",
        "g:-1",
        "g:1x",
        "x:1",
        "p:3-17 ",
        "g:99999999999999999999",
    ],
)
def test_anything_else_names_no_conversation(text: str) -> None:
    assert parse_conversation(text) is None
