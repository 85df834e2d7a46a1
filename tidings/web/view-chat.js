// @ts-check
// The open conversation: its header, messages with time lines and read status,
// the pending sends, and the composer.

import { $, avatar, el, icon } from "./dom.js";
import {
  MAX_BODY_CHARS, composerCheck, durationText, fileSize, fitBox, lineTime, linkParts, plural,
  typingText, untilTime,
} from "./format.js";
import { nextMuteEnd, refusalLine, sendBlock } from "./group-rules.js";
import { loadOlder } from "./history.js";
import { sendPending, socket, watchRows } from "./live.js";
import { user, userName } from "./people.js";
import { drawn, mentionsMe, recallLine } from "./messages.js";
import { render } from "./render.js";
import { S, me, savePending } from "./state.js";
import { actionsNode, jumpTo, reEdit, renderTarget } from "./view-actions.js";
import { READ_BY_SHOWN, readByNode } from "./view-readby.js";
import { drawUploads } from "./view-attach.js";

/** Kinds that count as messages (PROTOCOL-v2 §1): only they show who read them. */
const COUNTED = new Set(["text", "image", "file", "voice"]);

/**
 * "Sent" or "Read" under the last own message of a private chat; who read
 * them under one's own latest group messages.
 * @param {import("./types.js").Message} message
 * @param {number} lastOwnSeq
 * @param {import("./store.js").Entry} entry
 * @param {Set<number>} readBySeqs
 */
function statusFor(message, lastOwnSeq, entry, readBySeqs) {
  if (entry.type === "group" && readBySeqs.has(message.seq)) {
    return readByNode(entry.id, message.seq);
  }
  if (entry.type !== "private" || message.sender !== me().id || message.seq !== lastOwnSeq) {
    return null;
  }
  const read = (S.peerRead[entry.id] || 0) >= message.seq;
  return el("div", read ? "status read" : "status", read ? "Read" : "Sent");
}

/**
 * The grey line in place of a recalled message; your own offers "Re-edit"
 * while this page still holds its text.
 * @param {import("./store.js").Entry} entry
 * @param {import("./types.js").Message} message
 */
function recalledNode(entry, message) {
  const line = el("div", "notice-line recalled");
  line.dataset.seq = String(message.seq);
  line.appendChild(el("span", null, recallLine(message, me().id, userName)));
  const text = S.recalledText.get(`${entry.id}#${message.seq}`);
  if (text && (message.recalled_by ?? message.sender) === me().id) {
    const button = el("button", "link re-edit", "Re-edit");
    button.type = "button";
    button.addEventListener("click", () => reEdit(text));
    line.append(" · ", button);
  }
  return line;
}

/**
 * @param {import("./store.js").Entry} entry
 * @param {NonNullable<import("./types.js").Message["reply_to"]>} quoted
 */
function quoteNode(entry, quoted) {
  const quote = el("button", "quote");
  quote.type = "button";
  const who = quoted.sender === me().id ? "You" : userName(quoted.sender);
  quote.textContent = `${who}: ${quoted.preview ?? "[Recalled]"}`;
  quote.title = "Show the quoted message";
  quote.addEventListener("click", () => jumpTo(entry.id, quoted.seq));
  return quote;
}

/** The largest box a thumbnail is shown in, in CSS pixels (the server's are at most 320). */
const THUMB_BOX = 240;

/**
 * The full image over the page: closed by Escape, a click, or its button;
 * the focus goes back where it was.
 * @param {import("./types.js").Attachment} file
 */
export function openViewer(file) {
  const back = /** @type {HTMLElement | null} */ (document.activeElement);
  const dialog = el("dialog", "viewer");
  dialog.setAttribute("aria-label", file.name || "Image");
  const image = el("img", "viewer-image");
  image.src = file.url;
  image.alt = file.name || "Image";
  if (file.width && file.height) {
    image.width = file.width;
    image.height = file.height;
  }
  const close = el("button", "viewer-close", "Close");
  close.type = "button";
  dialog.append(image, close);
  dialog.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (back && back.isConnected) back.focus();
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  close.focus();
}

/**
 * An image, a file's card or a voice note (PROTOCOL-v2 §3). The image's box
 * has its size before the thumbnail loads, so the list does not jump.
 * @param {string} kind
 * @param {import("./types.js").Attachment} file
 */
function attachmentNode(kind, file) {
  if (kind === "image") {
    const box = fitBox(file.width, file.height, THUMB_BOX);
    const button = el("button", "att-image");
    button.type = "button";
    button.title = "Open the image";
    button.setAttribute("aria-label", `Open the image ${file.name || ""}`.trim());
    button.style.width = `${box.width}px`;
    button.style.height = `${box.height}px`;
    const image = el("img");
    image.src = file.thumbnail_url || file.url;
    image.alt = file.name || "Image";
    image.width = box.width;
    image.height = box.height;
    image.loading = "lazy";
    image.decoding = "async";
    button.appendChild(image);
    button.addEventListener("click", () => openViewer(file));
    return button;
  }
  if (kind === "voice") {
    const wrap = el("div", "att-voice");
    const audio = el("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = file.url;
    audio.setAttribute("aria-label", "Voice message");
    wrap.appendChild(audio);
    const length = durationText(file.duration_ms);
    if (length) wrap.appendChild(el("span", "att-duration", length));
    return wrap;
  }
  const card = el("div", "att-file");
  const glyph = el("span", "att-icon");
  glyph.appendChild(icon("M14 3H7a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h10a2 2 0 0 0 2-2V8zM14 3v5h5M9 13h6M9 17h6"));
  card.appendChild(glyph);
  const info = el("div", "att-info");
  info.appendChild(el("div", "att-name", file.name || "file"));
  info.appendChild(el("div", "att-size", fileSize(file.size)));
  card.appendChild(info);
  const link = el("a", "att-download", "Download");
  link.href = file.url;
  link.download = file.name || "file";
  link.setAttribute("aria-label", `Download ${file.name || "the file"}`);
  card.appendChild(link);
  return card;
}

/**
 * @param {import("./store.js").Entry} entry
 * @param {import("./types.js").Message | {sender: number, body: string, seq: number,
 *   sent_at?: string, reply_to?: undefined, fileKind?: string,
 *   attachment?: import("./types.js").Attachment}} message
 * @param {{pending?: boolean, status?: any}} options
 */
function messageNode(entry, message, options) {
  const own = message.sender === me().id;
  if ("kind" in message && message.kind === "system") {
    const line = el("div", "notice-line");
    line.appendChild(el("span", null, message.body || ""));
    return line;
  }
  if ("recalled" in message && message.recalled) return recalledNode(entry, message);
  const row = el("div", `msg ${own ? "own" : "other"}${options.pending ? " pending" : ""}`);
  if (message.seq) row.dataset.seq = String(message.seq);
  if ("kind" in message && mentionsMe(message, me().id)) row.classList.add("mentions-me");
  row.appendChild(avatar(`u${message.sender}`, userName(message.sender), "small"));
  const column = el("div", "msg-col");
  if (!own && entry.type === "group") column.appendChild(el("div", "sender", userName(message.sender)));
  const line = el("div", "msg-line");
  const bubble = el("div", "bubble");
  if ("forwarded_from" in message && message.forwarded_from) {
    bubble.appendChild(el("div", "forwarded", "Forwarded"));
  }
  if (message.reply_to) bubble.appendChild(quoteNode(entry, message.reply_to));
  const kind = "id" in message ? message.kind : message.fileKind; // a pending send: its file
  if (kind && kind !== "text" && message.attachment) {
    bubble.classList.add("has-attachment", `att-${kind}-bubble`);
    bubble.appendChild(attachmentNode(kind, message.attachment));
  }
  const caption = message.attachment && message.body ? el("div", "caption") : bubble;
  if (caption !== bubble) bubble.appendChild(caption);
  for (const part of linkParts(message.body || "")) {
    if (part.href) {
      const link = el("a", null, part.text); // text only: never HTML from a message
      link.href = part.href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      caption.appendChild(link);
    } else {
      caption.appendChild(document.createTextNode(part.text));
    }
  }
  if ("edited_at" in message && message.edited_at) bubble.appendChild(el("span", "edited", " (edited)"));
  if (message.sent_at) bubble.title = new Date(message.sent_at).toLocaleString();
  line.appendChild(bubble);
  if (options.status) line.appendChild(options.status);
  if ("kind" in message && message.seq && !options.pending && !entry.removed) {
    line.appendChild(actionsNode(entry, message));
  }
  column.appendChild(line);
  row.appendChild(column);
  return row;
}

export function renderPane() {
  const id = S.openId;
  const entry = id ? S.entries.get(id) : undefined;
  $("app").classList.toggle("show-pane", Boolean(entry));
  $("pane-empty").hidden = Boolean(entry);
  $("pane-chat").hidden = !entry;
  if (!id || !entry) return;
  $("pane-title").textContent = entry.title;
  let sub = "";
  if (entry.removed) {
    sub = "You are no longer a member";
  } else if (entry.type === "group") {
    const group = entry.group_id === null ? undefined : S.groups.get(entry.group_id);
    sub = group ? plural(group.member_ids.length, "member") : "";
    if (group && group.dissolved) sub = `Dissolved · ${sub}`;
  } else if (entry.peer_id !== null) {
    const peer = user(entry.peer_id);
    sub = peer ? `@${peer.username}` : "";
  }
  const typists = [...(S.typing.get(id) || new Map())]
    .filter(([, until]) => until > Date.now())
    .map(([who]) => (entry.type === "group" ? userName(who) : "")); // private: the title says who
  const typing = typists.length
    ? (entry.type === "group" ? typingText(typists) : "typing…") : "";
  $("pane-sub").textContent = typing || sub;
  $("pane-sub").classList.toggle("typing", Boolean(typing));
  $("btn-members").hidden = entry.type !== "group" || Boolean(entry.removed);
  // PROTOCOL-v2 §6: a dissolved group, a muted member, everyone muted.
  const group = entry.type === "group" && entry.group_id !== null
    ? S.groups.get(entry.group_id) : undefined;
  const refused = S.refused.get(id);
  const blocked = entry.removed ? null
    : (group && sendBlock(group, me().id, Date.now(), (d) => untilTime(d)))
      || (refused ? refusalLine(refused) : null);
  watchMutes(group);
  $("composer").hidden = Boolean(entry.removed) || Boolean(blocked);
  $("compose-blocked").hidden = !blocked;
  $("compose-blocked").textContent = blocked || "";
  $("removed-note").hidden = !entry.removed;
  if (entry.removed) {
    $("removed-text").textContent = entry.type === "group"
      ? `You were removed from “${entry.title}”. You can read what is here, but not write.`
      : "You can no longer write in this chat.";
  }

  const c = S.convs.get(id);
  const box = $("messages");
  const nodes = [];
  if (!c || !c.loaded) {
    nodes.push(el("div", "loading", "Loading…"));
  } else {
    const first = c.msgs.size ? Math.min(...c.msgs.keys()) : entry.last_seq + 1;
    if (c.hasMore) {
      nodes.push(el("div", "loading older", "Scroll up for older messages"));
    } else if (entry.type === "group" && first > 1) {
      // Added after the group's first message: what came before is not for this member.
      nodes.push(el("div", "history-start joined",
        "You joined this group. Messages sent before you joined are not shown to you."));
    } else if (c.msgs.size) {
      nodes.push(el("div", "history-start", "Beginning of the conversation"));
    } else {
      nodes.push(el("div", "history-start", entry.type === "group"
        ? "No messages yet." : "No messages yet. Say hello."));
    }
    // Who recalled what, from the notices (a group's owner and admins may recall others' messages).
    for (const notice of c.msgs.values()) {
      const target = notice.kind === "recall" && notice.target_seq != null
        ? c.msgs.get(notice.target_seq) : undefined;
      if (target && target.recalled_by === undefined) target.recalled_by = notice.sender;
    }
    const messages = drawn(c.msgs.values());
    let lastOwnSeq = 0;
    /** @type {number[]} */
    const own = [];
    for (const message of messages) {
      if (message.sender === me().id && !message.recalled) {
        lastOwnSeq = message.seq;
        if (COUNTED.has(message.kind || "text")) own.push(message.seq);
      }
    }
    // Who read one's own latest group messages (PROTOCOL-v2 §6).
    const readBySeqs = new Set(entry.removed ? [] : own.slice(-READ_BY_SHOWN));
    const mark = S.newLine && S.newLine.id === id ? S.newLine.after : null;
    let marked = false;
    for (const message of messages) {
      if (mark !== null && !marked && message.seq > mark && message.sender !== me().id) {
        marked = true;
        const line = el("div", "new-line");
        line.id = "new-line";
        line.appendChild(el("span", null, "New messages"));
        nodes.push(line);
      }
      if (message.time_separator) {
        const timeLine = el("div", "time-line");
        timeLine.appendChild(el("span", null, lineTime(message.sent_at)));
        nodes.push(timeLine);
      }
      nodes.push(messageNode(entry, message,
        { status: statusFor(message, lastOwnSeq, entry, readBySeqs) }));
    }
  }
  for (const pending of S.pending) {
    if (pending.conversation !== id) continue;
    let status;
    if (pending.state === "failed") {
      status = el("button", "status failed", `${pending.error || "Not sent"} · Retry`);
      status.type = "button";
      status.addEventListener("click", () => {
        sendPending(pending);
        savePending();
        render({ pane: true });
      });
    } else {
      status = el("div", "status sending", socket.authed ? "Sending…" : "Waiting for network…");
    }
    nodes.push(messageNode(entry, { sender: me().id, body: pending.body, seq: 0,
      fileKind: pending.kind, attachment: pending.attachment }, { pending: true, status }));
  }
  box.replaceChildren(...nodes);
  drawUploads();
  renderTarget();
  watchRows(box);
  if (c && c.loaded && c.hasMore && box.scrollHeight <= box.clientHeight) loadOlder(id);
}

/** @type {ReturnType<typeof setTimeout> | 0} */
let muteTimer = 0;

/**
 * A mute runs out with no notice from the server: the open group's composer
 * and panel are drawn again when the next one in it ends.
 * @param {import("./types.js").Group | undefined} group
 */
function watchMutes(group) {
  if (muteTimer) clearTimeout(muteTimer);
  muteTimer = 0;
  const next = group ? nextMuteEnd(group, Date.now()) : 0;
  if (!next) return;
  // At most an hour at a time: a 30-day mute is past setTimeout's range.
  const wait = Math.min(next - Date.now() + 50, 3_600_000);
  muteTimer = setTimeout(() => {
    muteTimer = 0;
    render({ pane: true, members: true });
  }, wait);
}

/** The jump-to-latest button: shown when scrolled up, with the count of unseen messages. */
export function updateLatest() {
  const button = $("btn-latest");
  const entry = S.openId ? S.entries.get(S.openId) : undefined;
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
  button.hidden = !entry || atBottom;
  if (button.hidden || !entry) return;
  const label = entry.unread > 0 ? plural(entry.unread, "new message") : "Latest";
  button.textContent = `${label} ↓`;
  button.setAttribute("aria-label", entry.unread > 0
    ? `${label} below: jump to the latest` : "Jump to the latest message");
}

/** The composer grows with its text, up to 160 px, and counts it near the limit. */
export function sizeComposer() {
  const box = $("compose");
  box.style.height = "auto";
  box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
  const check = composerCheck(box.value);
  const count = $("compose-count");
  count.textContent = check.over
    ? `${check.count} · too long to send, shorten it by ${check.length - MAX_BODY_CHARS}`
    : check.count || "";
  count.classList.toggle("over", check.over);
  box.setAttribute("aria-invalid", String(check.over));
  $("btn-send").disabled = check.over;
}
