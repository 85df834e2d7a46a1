// @ts-check
// The live part: the socket's frames applied to the state, sync after every
// (re)connect, and sending and reading through the socket (HTTP when it is down).

import { $ } from "./dom.js";
import { TYPING_SHOWN_MS, composerCheck, randomId } from "./format.js";
import {
  TYPING_INTERVAL_MS, readFrame, sendFrame, sendOutcome, sendRefId, typingFrame,
} from "./frames.js";
import { refusalLine } from "./group-rules.js";
import { addMessages, catchUp, removePendingFor } from "./history.js";
import { openConversation, openFromRoute } from "./nav.js";
import { noticeMessage } from "./notices.js";
import {
  adoptDraft, api, dropConversation, enc, fetchEntry, loadGroup, mergeEntry, notePeerRead,
  userName,
} from "./people.js";
import { render } from "./render.js";
import { S, draftsKey, me, save, savePending } from "./state.js";
import { LiveSocket } from "./socket.js";
import {
  applyMessage, applyOwnRead, goneEntries, readUpTo, unreadAfter, withDraft,
} from "./store.js";
import { mentionsIn } from "./messages.js";
import { sendEdit } from "./view-actions.js";
import { sizeComposer } from "./view-chat.js";

export const socket = new LiveSocket({
  url: `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`,
  token: () => S.token,
  onFrame,
  onState: setConnection,
  onClose: async (code) => {
    if (code === 4001 || code === 4003) {
      // Refused or logged out: a 401 here signs this tab out (see people.api).
      try {
        await api("GET", "/me");
      } catch {
        if (!S.token) return false;
      }
    }
    return true;
  },
});

/** @param {import("./types.js").ServerFrame} frame */
function onFrame(frame) {
  switch (frame.type) {
    case "auth_ok":
      S.me = frame.user;
      sync();
      break;
    case "message":
      onMessage(frame.message);
      break;
    case "ack":
      if (frame.message) {
        removePendingFor(frame.message);
        onMessage(frame.message);
      } else if (frame.conversation) {
        mergeEntry(frame.conversation);
        render({ list: true });
      }
      break;
    case "read":
      onRead(frame);
      break;
    case "conversation":
      mergeEntry(frame.conversation);
      if (frame.conversation.group_id) loadGroup(frame.conversation.group_id);
      // The open chat's header shows the entry's title (a peer renamed: v2 §9).
      render({ list: true, pane: frame.conversation.id === S.openId });
      break;
    case "conversation_removed":
      dropConversation(frame.conversation, true);
      break;
    case "typing":
      onTyping(frame.conversation, frame.user);
      break;
    case "error":
      onError(frame);
      break;
    default:
      break; // pong, push and anything newer
  }
}

/** @param {import("./types.js").Message} message */
function onMessage(message) {
  const entry = S.entries.get(message.conversation);
  S.typing.get(message.conversation)?.delete(message.sender); // what they were typing came
  if (!entry) {
    fetchEntry(message.conversation).then((found) => {
      if (!found) return;
      // A second message while the first one's fetch ran shares that fetch,
      // whose answer may predate it: counted here, or the badge is one short.
      const entry = S.entries.get(message.conversation);
      if (entry && applyMessage(entry, message, me().id, S.clock + 1)) {
        S.clock += 1;
        render({ list: true });
      }
      noticeMessage(message, userName, openConversation);
    });
  } else if (applyMessage(entry, message, me().id, S.clock + 1)) {
    S.clock += 1;
    if (message.sender === me().id && entry.draft === null && !message.target_seq) {
      adoptDraft(message.conversation, ""); // a send clears the draft (sent elsewhere too)
    }
    if (message.kind === "recall" && message.sender !== me().id) {
      // A recalled message may have been unread, or @ this user: the exact counts.
      fetchEntry(message.conversation);
    } else if (message.kind !== "edit") {
      noticeMessage(message, userName, openConversation);
    }
  }
  if (message.kind === "system") groupChanged(message);
  render({ list: true });
  addMessages(message.conversation, [message], false);
  if (message.conversation === S.openId && message.sender !== me().id) markOpenRead();
}

/**
 * A group's change (PROTOCOL-v2 §6) came as its notice: the new name at once,
 * and the group again (roles, mutes, announcement) for the panel and composer.
 * @param {import("./types.js").Message} message
 */
function groupChanged(message) {
  const entry = S.entries.get(message.conversation);
  if (!entry || entry.type !== "group" || entry.group_id === null) return;
  const change = /** @type {{event?: string, name?: string | null}} */ (message.system || {});
  if (change.event === "renamed" && change.name) entry.title = change.name;
  if (S.groups.has(entry.group_id) || message.conversation === S.openId) loadGroup(entry.group_id);
}

/**
 * Someone types in a conversation: shown in its header for a few seconds, or
 * until their message comes.
 * @param {string} conversation
 * @param {number} who
 */
function onTyping(conversation, who) {
  const typists = S.typing.get(conversation) || new Map();
  typists.set(who, Date.now() + TYPING_SHOWN_MS);
  S.typing.set(conversation, typists);
  if (conversation === S.openId) render({ pane: true });
  setTimeout(() => {
    const until = typists.get(who);
    if (until !== undefined && until <= Date.now()) {
      typists.delete(who);
      if (conversation === S.openId) render({ pane: true });
    }
  }, TYPING_SHOWN_MS + 50);
}

/** The user types in the open conversation: say so, at most every 2 s. */
export function noteTyping() {
  const id = S.openId;
  if (!id || !$("compose").value.trim()) return;
  const entry = S.entries.get(id);
  if (!entry || entry.removed) return;
  const now = Date.now();
  if (now - (S.typingSent.get(id) || 0) < TYPING_INTERVAL_MS) return;
  S.typingSent.set(id, now);
  socket.send(typingFrame(id)); // nothing to do if the line is down: typing is of the moment
}

/** @param {{conversation: string, user: number, seq: number}} frame */
function onRead(frame) {
  if (frame.user !== me().id) {
    notePeerRead(frame.conversation, frame.seq);
    return;
  }
  const entry = S.entries.get(frame.conversation);
  if (!entry) return;
  const outcome = applyOwnRead(entry, frame.seq);
  if (outcome === "ignored") return;
  if (outcome === "refetch") fetchEntry(frame.conversation); // the exact count of what is left
  render({ list: true });
}

/** @param {{ref?: unknown, code: string, message: string}} frame */
function onError(frame) {
  const cmid = sendRefId(frame.ref);
  const pending = cmid && S.pending.find((p) => p.cmid === cmid);
  if (!pending) return;
  const outcome = sendOutcome(frame.code, frame.message);
  if (outcome.retry) {
    setTimeout(() => sendPending(pending), 1500 + Math.random() * 1000);
    return;
  }
  const entry = S.entries.get(pending.conversation);
  if (refusalLine(frame.code) && entry && entry.group_id !== null) {
    // Muted, or the group dissolved: not a broken bubble but the composer's
    // line, its text kept as the draft; the group read again says for how long.
    S.pending.splice(S.pending.indexOf(pending), 1);
    savePending();
    keepAsDraft(pending);
    S.refused.set(pending.conversation, frame.code);
    loadGroup(entry.group_id);
    render({ pane: true, list: true });
    return;
  }
  pending.state = "failed";
  pending.error = outcome.label;
  savePending();
  render({ pane: true });
}

/**
 * A refused send's text back where it was typed, before anything typed since.
 * @param {import("./state.js").Pending} pending
 */
function keepAsDraft(pending) {
  const id = pending.conversation;
  const open = id === S.openId;
  const before = open ? $("compose").value : S.drafts[id] || "";
  const text = before.trim() ? `${pending.body}\n${before}` : pending.body;
  if (open) {
    $("compose").value = text;
    saveDraft();
    sizeComposer();
  } else {
    S.drafts = withDraft(S.drafts, id, text);
    save(localStorage, draftsKey(), S.drafts);
  }
}

/**
 * After every (re)connect: the list, then each loaded conversation `after` its
 * last seq, then whatever is still unsent.
 */
export async function sync() {
  const generation = ++S.syncGen;
  const started = S.clock;
  try {
    api("GET", "/limits").then((limits) => { S.limits = limits; }).catch(() => {});
    // Hidden entries too: not listed, but their unread is in the title's total.
    const data = await api("GET", "/conversations?limit=1000&hidden=true");
    if (generation !== S.syncGen) return;
    const listed = new Set();
    for (const entry of data.conversations) {
      listed.add(entry.id);
      mergeEntry(entry, false);
    }
    for (const id of goneEntries(S.entries, listed, started)) dropConversation(id, true);
    render({ list: true, pane: true });
    if (S.openId && !S.entries.has(S.openId)) await openFromRoute();
    for (const id of S.convs.keys()) catchUp(id);
    for (const pending of S.pending) if (pending.state === "sending") sendPending(pending);
    markOpenRead();
    if (S.openId) {
      const entry = S.entries.get(S.openId);
      if (entry && entry.group_id) loadGroup(entry.group_id);
    }
  } catch {
    // offline again: the next auth_ok runs this once more
  }
}

/** @param {import("./state.js").Pending} pending */
export function sendPending(pending) {
  if (!S.pending.includes(pending)) return;
  pending.state = "sending";
  pending.error = null;
  // "Sending…" is only honest on a live line: a send unanswered (no ack, no
  // frame at all) within seconds gives the line up (then "Waiting for network…").
  if (socket.send(sendFrame(pending))) socket.answerExpected();
}

export function sendMessage() {
  const box = $("compose");
  const body = box.value;
  // Never cut: a body over the server's limit stays in the box, unsent.
  if (!S.openId || !composerCheck(body).sendable) {
    sizeComposer();
    return;
  }
  if (S.target && S.target.mode === "edit" && S.target.conversation === S.openId) {
    sendEdit().then(() => {
      saveDraft();
      sizeComposer();
    });
    return;
  }
  const quoted = S.target && S.target.conversation === S.openId ? S.target.seq : null;
  const group = S.entries.get(S.openId)?.type === "group";
  const tagged = group ? mentionsIn(body, S.picked) : { mentions: [], mention_all: false };
  S.target = null;
  S.picked = new Map();
  /** @type {import("./state.js").Pending} */
  const pending = { cmid: randomId(), conversation: S.openId, body, state: "sending", error: null,
    reply_to: quoted, mentions: tagged.mentions, mention_all: tagged.mention_all };
  S.pending.push(pending);
  savePending();
  box.value = "";
  S.draftSynced.set(pending.conversation, ""); // the send clears the server's draft itself
  saveDraft();
  sizeComposer();
  sendPending(pending);
  render({ pane: true, scroll: "bottom" });
}

/**
 * An uploaded file goes out as a message of its kind (PROTOCOL-v2 §2), the
 * composer's text as its caption (a voice note has none: the text stays).
 * @param {import("./types.js").Attachment} file
 * @param {"image" | "file" | "voice"} kind
 * @param {string} conversation
 */
export function sendAttachment(file, kind, conversation) {
  const box = $("compose");
  const open = conversation === S.openId;
  const text = open ? box.value : "";
  const caption = kind !== "voice" && text.trim() && composerCheck(text).sendable ? text : "";
  const quoted = open && S.target && S.target.mode === "reply" && S.target.conversation === conversation
    ? S.target.seq : null;
  const group = S.entries.get(conversation)?.type === "group";
  const tagged = group && caption ? mentionsIn(caption, S.picked) : { mentions: [], mention_all: false };
  if (quoted !== null) S.target = null;
  if (caption) S.picked = new Map();
  /** @type {import("./state.js").Pending} */
  const pending = { cmid: randomId(), conversation, body: caption, state: "sending", error: null,
    reply_to: quoted, mentions: tagged.mentions, mention_all: tagged.mention_all,
    kind, file_id: file.id, attachment: file };
  S.pending.push(pending);
  savePending();
  if (caption) {
    box.value = "";
    S.draftSynced.set(conversation, "");
    saveDraft();
    sizeComposer();
  }
  sendPending(pending);
  render({ pane: true, scroll: "bottom" });
}

/**
 * The composer's text is the open conversation's draft: kept on this device
 * at once, and on the server (so the user's other devices have it) once the
 * typing pauses, or when the chat is left.
 */
export function saveDraft() {
  const id = S.openId;
  if (!id || !S.me) return;
  const before = S.drafts[id] || "";
  const text = $("compose").value;
  S.drafts = withDraft(S.drafts, id, text);
  save(localStorage, draftsKey(), S.drafts);
  if (Boolean(before.trim()) !== Boolean(text.trim())) render({ list: true });
  if (draftTimer) clearTimeout(draftTimer);
  draftTimer = setTimeout(() => pushDraft(id), DRAFT_PAUSE_MS);
}

const DRAFT_PAUSE_MS = 800;
/** @type {ReturnType<typeof setTimeout> | null} */
let draftTimer = null;

/**
 * Send a conversation's draft to the server if it differs from what the
 * server has (a private chat before its first message keeps it here only).
 * @param {string} id
 */
export function pushDraft(id) {
  if (draftTimer) clearTimeout(draftTimer);
  draftTimer = null;
  const entry = S.entries.get(id);
  if (!entry || entry.local || entry.removed || !S.token) return;
  const text = (S.drafts[id] || "").trim() ? S.drafts[id] : "";
  const synced = S.draftSynced.get(id) ?? (entry.draft ? entry.draft.body : "");
  if (text === synced) return; // nothing typed here since: the server's may be newer
  S.draftSynced.set(id, text);
  api("PATCH", `/conversations/${enc(id)}`, { draft: text || null })
    .then((updated) => {
      mergeEntry(updated);
      render({ list: true });
    })
    .catch(() => {
      S.draftSynced.delete(id); // kept on this device; the next pause tries again
    });
}

/**
 * Mark the open conversation read up to the last message that was on screen
 * in a visible tab (S.seen, kept by watchRows); never further. A chat marked
 * unread is read where it stands when opened (that clears the mark).
 */
export function markOpenRead() {
  const id = S.openId;
  if (!id) return;
  const entry = S.entries.get(id);
  if (!entry || entry.local || entry.removed) return;
  const visible = document.visibilityState === "visible";
  let seq = readUpTo(S.seen, entry.read_seq, visible);
  if (!seq && entry.marked_unread && visible) {
    // Opened: a read that moves nothing still clears the mark (PROTOCOL-v2 §5).
    seq = entry.read_seq;
    entry.marked_unread = false;
  }
  if (!seq) return;
  entry.read_seq = seq;
  entry.unread = unreadAfter(S.convs.get(id), seq, entry.last_seq, me().id);
  render({ list: true, latest: true });
  if (!socket.send(readFrame(`r:${++S.refs}`, id, seq))) {
    api("POST", `/conversations/${enc(id)}/read`, { seq })
      .then((updated) => {
        mergeEntry(updated);
        render({ list: true });
      })
      .catch(() => {});
  }
}

/** @type {IntersectionObserver | null} */
let rowObserver = null;

/**
 * Watch the open conversation's message rows: which are on screen (at least
 * half of one, or half the box for a tall one) is kept in S.seen.
 * @param {HTMLElement} box  #messages, after its rows were replaced
 */
export function watchRows(box) {
  if (!rowObserver) {
    rowObserver = new IntersectionObserver((changes) => {
      for (const change of changes) {
        const seq = Number(/** @type {HTMLElement} */ (change.target).dataset.seq);
        const root = change.rootBounds;
        const enough = change.intersectionRatio >= 0.5
          || (root !== null && change.intersectionRect.height >= root.height * 0.5);
        if (change.isIntersecting && enough) S.seen.add(seq);
        else S.seen.delete(seq);
      }
      markOpenRead();
    }, { root: box, threshold: [0, 0.5, 1] });
  }
  rowObserver.disconnect();
  S.seen.clear();
  for (const row of box.querySelectorAll(".msg[data-seq]")) rowObserver.observe(row);
}

/**
 * @param {import("./socket.js").SocketState} state
 * @param {number} [seconds]
 */
function setConnection(state, seconds) {
  const banner = $("conn-banner");
  $("conn-dot").className = `dot ${state}`;
  const text = $("conn-text");
  if (state !== S.connState && S.pending.length) render({ pane: true });
  S.connState = state;
  if (state === "online") {
    banner.hidden = true;
    text.textContent = "Online";
    document.body.classList.remove("offline");
    return;
  }
  document.body.classList.add("offline");
  banner.hidden = false;
  if (state === "offline") {
    text.textContent = "Offline";
    banner.textContent = seconds && seconds > 0
      ? `Offline. Reconnecting in ${seconds} s…` : "Offline. Reconnecting…";
  } else {
    text.textContent = state === "connecting" ? "Connecting…" : "Reconnecting…";
    banner.textContent = state === "connecting" ? "Connecting…" : "Reconnecting…";
  }
}
