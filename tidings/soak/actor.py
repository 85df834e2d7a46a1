"""One soak client: a user who connects, sends, reads, drops and comes back, at random.

Everything it did and saw is recorded so that the checks can hold the
server to the contract afterwards:

- every send attempt by its ``client_msg_id`` (unique per attempt of a new
  message). A send that got an error or lost its socket is kept *pending*
  and sent again on the next connection with the same ``client_msg_id``:
  the server must then store it once and ack the original (guarantee 3);
- every connection is a :class:`SessionLog`: the ``message`` events it
  received live, in arrival order, and the seqs acked on it;
- after every (re)connect the client catches up each conversation with
  ``GET …/messages?after=<last seen seq>`` (guarantee 4);
- PROTOCOL-v2 traffic: some group sends @ other members, and now and then
  the client recalls or edits one of its own acked messages. A recall or
  an edit is an attempt like a send (its own ``client_msg_id``, resent
  until acked), with ``kind`` and ``target`` so the checks can find its
  notice and its effect on the target.

"Last seen" moves with events and history only, never with acks: an ack
is not ordered with the events of other nodes (a node acks its own commit
at once while an earlier seq from another node may still be in flight),
so a client that counted its acks as seen could skip a message when it
catches up. The SDK's ``Client.events`` handles this by filling gaps from
history; the soak client keeps the rule simple instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import aiohttp
import msgspec

from tidings.client import ApiError, Client, Socket, message_of
from tidings.models import Conversation, Message
from tidings.soak.keep import Act, Kept, take_answer, take_silence

CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 10.0
PAGE = 200
#: A catch-up never reads more pages than this (each loop is bounded).
MAX_PAGES = 10_000
#: Errors of a send after which the same client_msg_id is sent again later.
RETRYABLE = {"closed", "unavailable", "rate_limited", "timeout", "network"}
#: Refusals a recall or an edit may fairly get (a window passed; an edit
#: resent after its target was recalled): declined, not a server bug.
DECLINED = {"forbidden", "recall_expired", "edit_expired"}
DECLINED |= {f"http:{code}" for code in DECLINED}
_NETWORK = (aiohttp.ClientError, OSError, TimeoutError)

# Bodies of several shapes: plain, non-ASCII and emoji, JSON-looking, near the size limit.
_FILLERS = ("hello", "héllo wörld ✓", "你好，世界", "🌏🚀👍🏽", '{"not": "json"}', "a\nb\tc")


@dataclass
class Attempt:
    """A message the client means to send, by its client_msg_id."""

    cmid: str
    conversation: str
    body: str  # a recall's is "" (the server words its notice)
    tries: int = 0
    acked: Message | None = None
    refused: str | None = None  # a non-retryable error code: a server bug for a valid send
    kind: str = "text"  # "text", or "recall" / "edit" of ``target``
    target: int = 0
    mentions: tuple[int, ...] = ()
    declined: str | None = None  # a recall or edit fairly refused (DECLINED)
    born: int = 0  # the actor's clock when it was made (keep.py orders acts by it)


@dataclass
class SessionLog:
    """One WebSocket connection: what arrived live and what was acked on it."""

    node: int
    live: dict[str, list[tuple[int, str]]] = field(default_factory=lambda: defaultdict(list))
    acked: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    close_code: int | None = None
    opened: float = field(default_factory=time.time)  # wall clock, to match node logs
    closed: float = 0.0


@dataclass
class Tally:
    """What the client tried and what happened, for the report."""

    connects: int = 0
    connect_failures: int = 0
    abrupt_drops: int = 0
    drops_mid_send: int = 0
    clean_closes: int = 0
    server_closes: Counter[int] = field(default_factory=Counter)
    sends_ws: int = 0
    sends_http: int = 0
    bursts: int = 0
    resends: int = 0
    resends_found_stored: int = 0
    repeat_probes: int = 0
    cross_repeat_probes: int = 0
    reads: int = 0
    reads_unacked: int = 0
    mentions: int = 0
    recalls: int = 0
    edits: int = 0
    entry_changes: int = 0  # PATCHes of an entry (PROTOCOL-v2 §5)
    group_changes: int = 0  # renames, announcements and admins tried (PROTOCOL-v2 §6)
    declined: int = 0
    catch_up_pages: int = 0
    caught_up_messages: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < 50:
            self.problems.append(text)
        self.errors["problem"] += 1


class Actor:
    def __init__(
        self,
        user_id: int,
        token: str,
        conversations: list[str],
        rng: random.Random,
        members_of: dict[str, list[int]] | None = None,
    ) -> None:
        self.user_id = user_id
        self.members_of = members_of or {}  # group conversation -> member ids
        self.touched: set[tuple[str, int]] = set()  # own messages a recall was sent for
        self.token = token
        self.conversations = conversations
        self.rng = rng
        self.tally = Tally()
        self.attempts: dict[str, Attempt] = {}
        self.pending: dict[str, Attempt] = {}  # not acked yet: resend on the next connection
        self.sessions: list[SessionLog] = []
        self.watermark: dict[str, int] = {}  # highest seq seen in events or history
        self.caught: dict[str, dict[int, str]] = defaultdict(dict)  # history read: seq -> id
        self.read_acked: dict[str, int] = {}  # highest read_seq an ack returned
        self.read_tried: dict[str, int] = {}  # highest seq of a read that got no answer
        self.own_history: dict[str, str] = {}  # client_msg_id -> id of own messages read back
        self.kept: dict[str, Kept] = {}  # what this user keeps on its entries (keep.py)
        self.read_acts: dict[str, list[Act]] = defaultdict(list)
        self.clock = 0  # orders this user's own acts
        self._counter = 0
        self._clients: list[Client] = []

    # -- the loop -------------------------------------------------------------------

    async def run(self, urls: list[str], http: aiohttp.ClientSession, deadline: float) -> None:
        """Connect to random nodes and act until ``deadline`` (loop time)."""
        loop = asyncio.get_running_loop()
        self._clients = [Client(url, self.token, session=http) for url in urls]
        backoff = 0.05
        try:
            while loop.time() < deadline:
                node = self.rng.randrange(len(urls))
                client = self._clients[node]
                try:
                    sock = await asyncio.wait_for(client.connect(), CONNECT_TIMEOUT)
                except (ApiError, *_NETWORK):
                    self.tally.connect_failures += 1
                    await asyncio.sleep(min(backoff, max(0.0, deadline - loop.time())))
                    backoff = min(backoff * 2, 1.0)
                    continue
                backoff = 0.05
                self.tally.connects += 1
                await self._session(node, client, sock, deadline)
        finally:
            for client in self._clients:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.close(), 5)

    async def _session(self, node: int, client: Client, sock: Socket, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        log = SessionLog(node)
        self.sessions.append(log)
        # The positions before this connection: live events may move the
        # watermark while the catch-up runs, and must not make it skip anything.
        last_seen = dict(self.watermark)
        reader = loop.create_task(self._listen(sock, log))
        abrupt = False
        try:
            await self.catch_up(client, last_seen)
            for attempt in list(self.pending.values()):
                self.tally.resends += 1
                await self._send_ws(sock, None, attempt)
                acked = attempt.acked
                if acked is None:
                    continue
                # Stored before this connection (the history just read has it, or it
                # is at or below the last seq seen before): its ack is no delivery of
                # this connection, but it must be that very message.
                earlier = self.own_history.get(attempt.cmid)
                if earlier is not None and acked.id != earlier:
                    self.tally.problem(f"resend of {attempt.cmid} acked another message")
                if earlier is None and acked.seq > last_seen.get(acked.conversation, 0):
                    log.acked[acked.conversation].append(acked.seq)
                else:
                    self.tally.resends_found_stored += 1
            for _ in range(self.rng.randint(5, 60)):
                if loop.time() >= deadline or sock.closed:
                    break
                await self._step(client, sock, log)
                await asyncio.sleep(self.rng.uniform(0, 0.06))
            abrupt = self.rng.random() < 0.35
        except (ApiError, *_NETWORK) as exc:
            self.tally.errors[f"session:{type(exc).__name__}"] += 1
        finally:
            if sock.closed:
                log.close_code = sock.close_code
                self.tally.server_closes[sock.close_code or 0] += 1
            elif abrupt:
                self.tally.abrupt_drops += 1
                _drop(sock)
            else:
                self.tally.clean_closes += 1
            log.closed = time.time()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sock.close(), 5)
            done, _ = await asyncio.wait({reader}, timeout=5)
            if not done:
                reader.cancel()
                self.tally.problem("the reader of a closed socket did not stop")

    async def _listen(self, sock: Socket, log: SessionLog) -> None:
        """Record every live ``message`` event of this connection, in arrival order."""
        async for frame in sock.events():
            if frame.get("type") != "message":
                continue
            try:
                message = message_of(frame)
            except msgspec.ValidationError:
                self.tally.problem(f"malformed message event {frame!r:.200}")
                continue
            log.live[message.conversation].append((message.seq, message.id))
            self._saw(message.conversation, message.seq)

    def _saw(self, conversation: str, seq: int) -> None:
        if seq > self.watermark.get(conversation, 0):
            self.watermark[conversation] = seq

    async def catch_up(self, client: Client, last_seen: dict[str, int] | None = None) -> None:
        """Fetch every conversation after its last seen seq (``last_seen``, by default
        the current watermark), page by page."""
        start = dict(self.watermark) if last_seen is None else last_seen
        for number, conversation in enumerate(self.conversations):
            try:
                await self._catch_up_one(client, conversation, start.get(conversation, 0))
            except BaseException:
                # Live events may have moved the watermark past messages this
                # catch-up never reached: go back to where it stood, so that the next
                # connection fetches them (the live events stay recorded as seen).
                for rest in self.conversations[number:]:
                    self.watermark[rest] = start.get(rest, 0)
                raise

    async def _catch_up_one(self, client: Client, conversation: str, after: int) -> None:
        for _ in range(MAX_PAGES):
            page = await asyncio.wait_for(
                client.messages(conversation, after=after, limit=PAGE), REQUEST_TIMEOUT
            )
            self.tally.catch_up_pages += 1
            self.tally.caught_up_messages += len(page)
            for message in page:
                self.caught[conversation][message.seq] = message.id
                self._saw(conversation, message.seq)
                if message.sender == self.user_id and message.client_msg_id:
                    self.own_history[message.client_msg_id] = message.id
            if len(page) < PAGE:
                return
            after = page[-1].seq

    # -- the actions ----------------------------------------------------------------

    async def _step(self, client: Client, sock: Socket, log: SessionLog) -> None:
        roll = self.rng.random()
        if roll < 0.62:
            burst = self.rng.choice((1, 1, 1, 2, 3, 5))
            self.tally.bursts += burst > 1
            batch = [self._new_attempt() for _ in range(burst)]
            sends = asyncio.gather(*(self._send_ws(sock, log, a) for a in batch))
            if self.rng.random() < 0.03:
                # Cut the connection while the sends are in flight: whether each
                # was stored is unknown to the client, which resends it later.
                await asyncio.sleep(self.rng.choice((0, 0, 0, 0.001, 0.003)))
                self.tally.drops_mid_send += 1
                _drop(sock)
            await sends
        elif roll < 0.80:
            await self._read(sock)
        elif roll < 0.84:
            await self._repeat(sock, log)
        elif roll < 0.88:
            await self._send_http(client, self._new_attempt())
        elif roll < 0.93:
            await self._recall_or_edit(sock, log)
        elif roll < 0.965:
            await self._keep(client)
        elif roll < 0.975:
            await self._run_group(client)
        else:
            await asyncio.sleep(self.rng.uniform(0, 0.2))

    def _new_attempt(self) -> Attempt:
        self._counter += 1
        cmid = f"u{self.user_id}-{self._counter}"
        conversation = self.rng.choice(self.conversations)
        shape = self.rng.random()
        if shape < 0.02:
            filler = "x" * self.rng.randint(3000, 3900)  # near the 4,000-character limit
        else:
            filler = self.rng.choice(_FILLERS) * self.rng.randint(1, 8)
        others = [u for u in self.members_of.get(conversation, []) if u != self.user_id]
        mentions: tuple[int, ...] = ()
        if others and self.rng.random() < 0.25:
            mentions = tuple(self.rng.sample(others, self.rng.randint(1, min(3, len(others)))))
            self.tally.mentions += 1
        attempt = Attempt(cmid, conversation, f"{cmid} {filler}", mentions=mentions)
        self.clock += 1
        attempt.born = self.clock
        self.attempts[cmid] = attempt
        self.pending[cmid] = attempt
        return attempt

    async def _recall_or_edit(self, sock: Socket, log: SessionLog) -> None:
        """Recall or edit one of this client's own acked text messages, not recalled yet."""
        own = [
            a.acked
            for a in self.attempts.values()
            if a.kind == "text"
            and a.acked is not None
            and (a.conversation, a.acked.seq) not in self.touched
        ]
        if not own:
            return
        target = self.rng.choice(own)
        self._counter += 1
        cmid = f"u{self.user_id}-{self._counter}"
        if self.rng.random() < 0.5:
            self.touched.add((target.conversation, target.seq))
            attempt = Attempt(cmid, target.conversation, "", kind="recall", target=target.seq)
            self.tally.recalls += 1
        else:
            body = f"{cmid} edited {self.rng.choice(_FILLERS)}"
            attempt = Attempt(cmid, target.conversation, body, kind="edit", target=target.seq)
            self.tally.edits += 1
        self.clock += 1
        attempt.born = self.clock
        self.attempts[cmid] = attempt
        self.pending[cmid] = attempt
        await self._send_ws(sock, log, attempt)

    async def _keep(self, client: Client) -> None:
        """Pin, mute, mark unread, hide or draft an entry (PROTOCOL-v2 §5) over HTTP."""
        conversation = self.rng.choice(self.conversations)
        what = self.rng.choice(("pinned", "muted", "marked_unread", "hidden", "draft", "draft"))
        change: dict[str, object]
        if what == "draft":
            self._counter += 1
            text = f"draft {self._counter} {self.rng.choice(_FILLERS)}"
            change = {"draft": self.rng.choice((text, text, None, ""))}
        else:
            change = {what: self.rng.random() < 0.6}
        self.clock += 1
        clock = self.clock
        kept = self.kept.setdefault(conversation, Kept())
        mine = [a for a in self.pending.values() if a.conversation == conversation]
        unsure_sends = any(a.kind == "text" for a in mine)
        unsure_acts = bool(mine) or any(not a.done for a in self.read_acts[conversation])
        self.tally.entry_changes += 1
        path = f"/api/v1/conversations/{conversation}"
        try:
            status, answer = await asyncio.wait_for(
                client.request("PATCH", path, change), REQUEST_TIMEOUT
            )
        except _NETWORK:
            take_silence(kept, change, clock)
            return
        if status == 200:
            entry = msgspec.convert(answer, type=Conversation)
            take_answer(kept, change, entry, clock, unsure_sends, unsure_acts)
        elif status == 404 and conversation.startswith("p:"):
            pass  # a private chat before its first message has no entry yet
        elif status >= 500:
            take_silence(kept, change, clock)  # a database failure mid-way: maybe applied
        else:
            self.tally.problem(f"PATCH {conversation} {change} answered {status}: {answer!r:.200}")

    async def _run_group(self, client: Client) -> None:
        """Rename a group, set its announcement or its admins (PROTOCOL-v2 §6): each a
        system notice among the messages, which every check must then account for.
        Who may not (a plain member; an admin setting admins) gets 403 forbidden."""
        groups = [c for c in self.conversations if c.startswith("g:")]
        if not groups:
            return
        conversation = self.rng.choice(groups)
        path = f"/api/v1/groups/{conversation[2:]}"
        self._counter += 1
        what = self.rng.choice(("name", "announcement", "admins"))
        body: dict[str, object]
        if what == "admins":
            others = [u for u in self.members_of.get(conversation, []) if u != self.user_id]
            chosen = self.rng.sample(others, self.rng.randint(0, min(2, len(others))))
            method, body = "PUT", {"user_ids": chosen}
            path += "/admins"
        elif what == "name":
            method, body = "PATCH", {"name": f"soak group {self.user_id}-{self._counter}"}
        else:
            method, body = "PATCH", {"announcement": f"note {self._counter}"}
        self.tally.group_changes += 1
        try:
            status, answer = await asyncio.wait_for(
                client.request(method, path, body), REQUEST_TIMEOUT
            )
        except _NETWORK:
            return  # maybe applied: the notice, if any, is in the history all the same
        if status == 200 or status >= 500:
            return
        if status == 403 and isinstance(answer, dict) and answer["error"]["code"] == "forbidden":
            return  # not the owner (or an admin, for what admins may do)
        self.tally.problem(f"{method} {path} {body} answered {status}: {answer!r:.200}")

    async def _deliver(self, sock: Socket, attempt: Attempt) -> Message:
        """The attempt's frame: a send, a recall or an edit, with its client_msg_id."""
        if attempt.kind == "recall":
            return await sock.recall(attempt.conversation, attempt.target, attempt.cmid)
        if attempt.kind == "edit":
            return await sock.edit(attempt.conversation, attempt.target, attempt.body, attempt.cmid)
        return await sock.send(
            attempt.conversation, attempt.body, attempt.cmid, mentions=attempt.mentions
        )

    async def _send_ws(self, sock: Socket, log: SessionLog | None, attempt: Attempt) -> None:
        attempt.tries += 1
        self.tally.sends_ws += 1
        try:
            message = await self._deliver(sock, attempt)
        except ApiError as exc:
            self._refused(attempt, exc.code)
            return
        except TimeoutError:
            self._refused(attempt, "timeout")
            return
        if self._acked(attempt, message) and log is not None:
            log.acked[message.conversation].append(message.seq)

    async def _send_http(self, client: Client, attempt: Attempt) -> None:
        """A send over HTTP while a socket is open: the socket must get it as an event."""
        attempt.tries += 1
        self.tally.sends_http += 1
        try:
            message = await asyncio.wait_for(
                client.send(
                    attempt.conversation, attempt.body, attempt.cmid, mentions=attempt.mentions
                ),
                REQUEST_TIMEOUT,
            )
        except ApiError as exc:
            self._refused(attempt, exc.code if exc.retryable else f"http:{exc.code}")
            return
        except _NETWORK:
            self._refused(attempt, "network")
            return
        self._acked(attempt, message)

    def _refused(self, attempt: Attempt, code: str) -> None:
        self.tally.errors[code] += 1
        if attempt.kind != "text" and code in DECLINED:
            attempt.declined = code
            self.tally.declined += 1
            self.pending.pop(attempt.cmid, None)
            return
        if code not in RETRYABLE:
            attempt.refused = code
            self.pending.pop(attempt.cmid, None)
            self.tally.problem(f"send {attempt.cmid} to {attempt.conversation} refused: {code}")

    def _acked(self, attempt: Attempt, message: Message) -> bool:
        """Check an ack against what was sent; False (and a problem) if it does not match."""
        # A recall's text is the server's ("{name} recalled a message"); an edit's
        # and a send's are ours. A send's body may read as edited or recalled
        # since (a repeat answers the message as it reads now): not compared.
        body = attempt.body if attempt.kind == "edit" else None
        target = attempt.target or None
        expected: list[object] = [
            attempt.conversation,
            self.user_id,
            attempt.cmid,
            attempt.kind,
            target,
            body,
        ]
        got_body = message.body if attempt.kind == "edit" else None
        got: list[object] = [
            message.conversation,
            message.sender,
            message.client_msg_id,
            message.kind,
            message.target_seq,
            got_body,
        ]
        if attempt.kind == "text" and not message.recalled and message.edited_at is None:
            expected.append(attempt.body)
            got.append(message.body)
        if got != expected:
            self.tally.problem(f"ack of {attempt.cmid} is another message: {got!r:.200}")
            return False
        first = attempt.acked
        if first is not None and (first.id, first.seq) != (message.id, message.seq):
            self.tally.problem(
                f"{attempt.cmid} acked twice as different messages: "
                f"{first.seq}/{first.id} then {message.seq}/{message.id}"
            )
            return False
        attempt.acked = message
        self.pending.pop(attempt.cmid, None)
        return True

    async def _repeat(self, sock: Socket, log: SessionLog) -> None:
        """Send an acked message again (same client_msg_id): the original must come back,
        even when the repeat names another conversation (the id is scoped to the sender)."""
        done = [a for a in self.attempts.values() if a.acked is not None and a.kind == "text"]
        if not done:
            return
        original = self.rng.choice(done)
        conversation = original.conversation
        if self.rng.random() < 0.5 and len(self.conversations) > 1:
            conversation = self.rng.choice([c for c in self.conversations if c != conversation])
            self.tally.cross_repeat_probes += 1
        else:
            self.tally.repeat_probes += 1
        try:
            message = await sock.send(conversation, original.body, original.cmid)
        except (ApiError, TimeoutError) as exc:
            self.tally.errors[f"repeat:{getattr(exc, 'code', 'timeout')}"] += 1
            return
        assert original.acked is not None
        if (message.id, message.seq, message.conversation) != (
            original.acked.id,
            original.acked.seq,
            original.acked.conversation,
        ):
            self.tally.problem(
                f"repeat of {original.cmid} (to {conversation}) stored anew as "
                f"{message.conversation}/{message.seq}"
            )

    async def _read(self, sock: Socket) -> None:
        seen = [c for c in self.conversations if self.watermark.get(c, 0) > 0]
        if not seen:
            return
        conversation = self.rng.choice(seen)
        top = self.watermark[conversation]
        seq = self.rng.choice((top, top, self.rng.randint(0, top)))
        self.tally.reads += 1
        self.clock += 1
        act = Act(self.clock, "read")
        self.read_acts[conversation].append(act)
        try:
            entry = await sock.mark_read(conversation, seq)
            act.done = True
        except (ApiError, TimeoutError) as exc:
            self.tally.reads_unacked += 1
            self.tally.errors[f"read:{getattr(exc, 'code', 'timeout')}"] += 1
            self.read_tried[conversation] = max(self.read_tried.get(conversation, 0), seq)
            return
        before = self.read_acked.get(conversation, 0)
        if entry.read_seq < max(seq, before):
            self.tally.problem(
                f"read of {conversation} to {seq} answered read_seq {entry.read_seq} "
                f"(it was {before}): it moved backwards or fell short"
            )
        if not 0 <= entry.unread <= entry.last_seq - entry.read_seq:
            self.tally.problem(
                f"read ack of {conversation}: unread {entry.unread} past last - read"
            )
        self.read_acked[conversation] = max(before, entry.read_seq)

    # -- after the run ----------------------------------------------------------------

    async def settle(self, client: Client, deadline: float) -> tuple[int, int]:
        """Resend what is still pending over HTTP until stored; (found stored, stored now).

        A 200 answers a client_msg_id the server already had (the lost ack's
        message), a 201 a send that had never been stored.
        """
        loop = asyncio.get_running_loop()
        found = created = 0
        for attempt in list(self.pending.values()):
            path = "/api/v1/conversations/" + attempt.conversation + "/messages"
            body: dict[str, object] = {"body": attempt.body, "client_msg_id": attempt.cmid}
            if attempt.kind == "text" and attempt.mentions:
                body["mentions"] = list(attempt.mentions)
            if attempt.kind != "text":
                path += f"/{attempt.target}/{attempt.kind}"
                if attempt.kind == "recall":
                    del body["body"]
            while loop.time() < deadline:
                attempt.tries += 1
                try:
                    status, answer = await asyncio.wait_for(
                        client.request("POST", path, body), REQUEST_TIMEOUT
                    )
                except _NETWORK:
                    await asyncio.sleep(0.2)
                    continue
                if status in (200, 201):
                    message = msgspec.convert(answer, type=Message)
                    if self._acked(attempt, message):
                        found += status == 200
                        created += status == 201
                    break
                if status in (429, 503):
                    await asyncio.sleep(0.2)
                    continue
                code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
                self._refused(
                    attempt, f"http:{code}" if code in ("forbidden",) else f"http_{status}"
                )
                break
        return found, created


def _drop(sock: Socket) -> None:
    """Cut the TCP connection without a close frame, as a dead network or a killed app does."""
    sock.drop()
