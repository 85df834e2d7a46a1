"""What HTTP clients send: each request body as a Struct, decoded once at the edge.

A body that is not JSON is ``bad_request`` with status 400; JSON of the
wrong shape (not an object, a field missing or of the wrong type) is
``bad_request`` with 422, naming the field. Rules beyond the shape (a
body's length, a name's characters, who may do what) are the service's,
shared by HTTP, WebSocket and the integration API. The OpenAPI document
takes its request schemas from these Structs.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import msgspec

from tidings.chatlist import EntryChange
from tidings.errors import ErrorCode, TidingsError, bad_request
from tidings.gateway.frames import field_problem
from tidings.ids import MAX_BIGINT
from tidings.service.conversations import Extras

# A user or group id in a body: what every database stores as a key.
Id = Annotated[int, msgspec.Meta(gt=0, le=MAX_BIGINT)]


class SignUp(msgspec.Struct, frozen=True):
    username: str
    password: str
    display_name: str | None = None


class LogIn(msgspec.Struct, frozen=True):
    username: str
    password: str


class UpdateMe(msgspec.Struct, frozen=True):
    display_name: str


class ChangePassword(msgspec.Struct, frozen=True):
    current: str
    new: str


class CreateGroup(msgspec.Struct, frozen=True):
    name: str
    member_ids: list[Id] = []


class AddMembers(msgspec.Struct, frozen=True):
    """One user (``user_id``) or several (``user_ids``, which wins when both are given)."""

    user_id: Id | None = None
    user_ids: list[Id] | None = None

    def ids(self) -> list[Id]:
        if self.user_ids is not None:
            return self.user_ids
        if self.user_id is None:
            raise bad_request("user_id: required (or user_ids)")
        return [self.user_id]


class ForwardSource(msgspec.Struct, frozen=True):
    """The message a send forwards (PROTOCOL-v2 §2)."""

    conversation: str
    seq: int


class Send(msgspec.Struct, frozen=True):
    # Required unless the send forwards a message (then it must be absent).
    body: str | None = None
    client_msg_id: str | None = None
    kind: str | None = None
    reply_to: int | None = None
    forward: ForwardSource | None = None
    mentions: list[int] = []
    mention_all: bool = False
    file_id: str | None = None

    def extras(self) -> Extras:
        forward = None if self.forward is None else (self.forward.conversation, self.forward.seq)
        return Extras.of(
            self.kind, self.reply_to, forward, self.mentions, self.mention_all, self.file_id
        )


class Recall(msgspec.Struct, frozen=True):
    client_msg_id: str | None = None


class Edit(msgspec.Struct, frozen=True):
    body: str
    client_msg_id: str | None = None


class Read(msgspec.Struct, frozen=True):
    seq: int


class PatchEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """PROTOCOL-v2 §5: what a user keeps on a chat-list entry; absent fields stay."""

    pinned: bool | msgspec.UnsetType = msgspec.UNSET
    muted: bool | msgspec.UnsetType = msgspec.UNSET
    hidden: bool | msgspec.UnsetType = msgspec.UNSET
    marked_unread: bool | msgspec.UnsetType = msgspec.UNSET
    # A string of at most 4,000 characters; null (or "") clears it.
    draft: str | None | msgspec.UnsetType = msgspec.UNSET

    def change(self, at: int) -> EntryChange:
        def given(value: bool | msgspec.UnsetType) -> bool | None:
            return None if value is msgspec.UNSET else bool(value)

        return EntryChange(
            at=at,
            pinned=given(self.pinned),
            muted=given(self.muted),
            marked_unread=given(self.marked_unread),
            hidden=given(self.hidden),
            set_draft=self.draft is not msgspec.UNSET,
            draft=None if self.draft is msgspec.UNSET else self.draft,
        )


class PatchGroup(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """PROTOCOL-v2 §6: absent fields stay; an announcement of "" clears it."""

    name: str | msgspec.UnsetType = msgspec.UNSET
    announcement: str | None | msgspec.UnsetType = msgspec.UNSET
    muted_all: bool | msgspec.UnsetType = msgspec.UNSET

    def fields(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if not isinstance(self.name, msgspec.UnsetType):
            found["name"] = self.name
        if not isinstance(self.announcement, msgspec.UnsetType):
            found["announcement"] = self.announcement or ""
        if not isinstance(self.muted_all, msgspec.UnsetType):
            found["muted_all"] = self.muted_all
        return found


class SetAdmins(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_ids: list[Id]


class SetOwner(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: Id


class MuteMember(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    seconds: Annotated[int, msgspec.Meta(ge=1, le=30 * 86_400)]


# -- the integration API -------------------------------------------------------


class AdminCreateUser(msgspec.Struct, frozen=True):
    username: str
    display_name: str | None = None


class AdminUpdateUser(msgspec.Struct, frozen=True):
    display_name: str


class AdminPush(msgspec.Struct, frozen=True):
    """To ``user_ids``, a group's members, or ``all``: ``event`` is any JSON value."""

    event: Any
    user_ids: list[Id] | None = None
    group_id: Id | None = None
    all: bool = False


class AdminSend(Send, frozen=True, kw_only=True):
    """A send as ``sender_id``, with everything a user's own send may carry."""

    sender_id: Id


class AdminRecall(msgspec.Struct, frozen=True):
    """A moderation recall; ``by``: recall as this member, with its rights, instead."""

    by: Id | None = None
    client_msg_id: str | None = None


class AdminCreateGroup(msgspec.Struct, frozen=True):
    owner_id: Id
    name: str
    member_ids: list[Id] = []


class AdminSetMembers(msgspec.Struct, frozen=True):
    member_ids: list[Id]


class PushKeys(msgspec.Struct, frozen=True):
    p256dh: str
    auth: str


class PushSubscribe(msgspec.Struct, frozen=True, rename={"expiration_time": "expirationTime"}):
    """A browser's ``PushSubscription.toJSON()`` (PROTOCOL-v2 §8), as it gives it."""

    endpoint: str
    keys: PushKeys
    # Milliseconds since the epoch, or null: when the browser will drop it.
    expiration_time: Annotated[int, msgspec.Meta(ge=0, le=MAX_BIGINT)] | None = None


class PushUnsubscribe(msgspec.Struct, frozen=True):
    endpoint: str


BODIES: tuple[type[msgspec.Struct], ...] = (
    PushSubscribe,
    PushUnsubscribe,
    SignUp,
    LogIn,
    UpdateMe,
    ChangePassword,
    CreateGroup,
    AddMembers,
    Send,
    Recall,
    Edit,
    Read,
    PatchEntry,
    PatchGroup,
    SetAdmins,
    SetOwner,
    MuteMember,
    AdminCreateUser,
    AdminUpdateUser,
    AdminPush,
    AdminSend,
    AdminRecall,
    AdminCreateGroup,
    AdminSetMembers,
)

Body = TypeVar("Body", bound=msgspec.Struct)


def decode_body(raw: bytes, kind: type[Body]) -> Body:
    """``raw`` as a ``kind``, or the contract's refusal."""
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise _refusal(raw, exc) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise TidingsError(ErrorCode.BAD_REQUEST, "the body is not JSON", status=400) from None
    except RecursionError:  # msgspec's answer to JSON nested too deep
        raise bad_request("the body is nested too deep") from None


def _refusal(raw: bytes, error: msgspec.ValidationError) -> TidingsError:
    if str(error).startswith("Expected `object`") and " - at `$" not in str(error):
        return bad_request("the body must be a JSON object")
    return bad_request(field_problem(error))
