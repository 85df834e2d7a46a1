// @ts-check
// Each open conversation's history: the newest page (or the pages around a
// message found by search), older pages on scroll, and catch-up after the last
// seq seen, deduped by seq (store.addToHistory).

import { ApiError } from "./api.js";
import { $ } from "./dom.js";
import { api, dropConversation, enc, notePeerRead } from "./people.js";
import { render } from "./render.js";
import { CATCH_UP_PAGE, PAGE, S, savePending } from "./state.js";
import { addToHistory, newHistory } from "./store.js";
import { renderPane } from "./view-chat.js";

/** @param {string} id */
export function conv(id) {
  let found = S.convs.get(id);
  if (!found) {
    found = newHistory();
    S.convs.set(id, found);
  }
  return found;
}

/** @param {import("./types.js").Message} message  an own message arrived: its pending copy goes */
export function removePendingFor(message) {
  if (!S.me || message.sender !== S.me.id || !message.client_msg_id) return;
  const before = S.pending.length;
  S.pending = S.pending.filter((p) => p.cmid !== message.client_msg_id);
  if (S.pending.length !== before) savePending();
}

/**
 * Store messages of a loaded conversation; `complete` says the server has
 * nothing after the highest of them.
 * @param {string} id
 * @param {import("./types.js").Message[]} messages
 * @param {boolean} complete
 */
export function addMessages(id, messages, complete) {
  for (const message of messages) removePendingFor(message);
  const c = S.convs.get(id);
  if (!c || !c.loaded) return;
  const me = S.me?.id;
  if (S.entries.get(id)?.type === "private") {
    for (const message of messages) if (message.sender !== me) notePeerRead(id, message.seq);
  }
  if (addToHistory(c, messages, complete)) catchUp(id);
  if (S.openId === id) render({ pane: true });
}

/** @param {string} id */
export async function catchUp(id) {
  const c = S.convs.get(id);
  if (!c || !c.loaded) return;
  if (c.catching) {
    c.again = true;
    return;
  }
  c.catching = true;
  try {
    do {
      c.again = false;
      for (;;) {
        const data = await api("GET",
          `/conversations/${enc(id)}/messages?after=${c.maxSeq}&limit=${CATCH_UP_PAGE}`);
        if (S.convs.get(id) !== c) return;
        const full = data.messages.length >= CATCH_UP_PAGE;
        addMessages(id, data.messages, !full);
        if (!full) break;
      }
    } while (c.again);
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) dropConversation(id, true);
  } finally {
    c.catching = false;
  }
}

/** @param {string} id */
export async function loadLatest(id) {
  const c = conv(id);
  if (c.loaded || c.loading) return;
  c.loading = true;
  // Opened with more unread than a page: from the first unread on (the rest
  // comes by catch-up), so the "new messages" line is where it belongs.
  const entry = S.entries.get(id);
  const mark = S.newLine && S.newLine.id === id ? S.newLine.after : null;
  const from = mark !== null && entry && entry.last_seq - mark > PAGE ? mark : null;
  try {
    const data = await api("GET", from === null ? `/conversations/${enc(id)}/messages?limit=${PAGE}`
      : `/conversations/${enc(id)}/messages?after=${from}&limit=${PAGE}`);
    if (S.convs.get(id) !== c) return;
    c.loaded = true;
    c.hasMore = from === null
      ? data.messages.length >= PAGE && data.messages[0].seq > 1
      : data.messages.length > 0 && data.messages[0].seq > 1;
    c.minSeq = data.messages.length ? data.messages[0].seq : 0;
    c.maxSeq = data.messages.length ? data.messages[data.messages.length - 1].seq : 0;
    addMessages(id, data.messages, true);
    if (S.openId === id) render({ pane: true, scroll: S.newLine?.id === id ? "unread" : "bottom" });
    // Anything that arrived while this page was in flight, or after it.
    const now = S.entries.get(id);
    if (now && now.last_seq > c.maxSeq) catchUp(id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) dropConversation(id, true);
  } finally {
    c.loading = false;
  }
}

/**
 * A conversation opened at one message (a search result): the page up to it
 * and the page after it, then the usual catch-up to the newest. A history
 * that holds the message is kept as it is; one that does not is replaced, so
 * what is held stays one run of seqs from minSeq (store.addToHistory's maxSeq
 * means "every seq up to here is loaded").
 * @param {string} id
 * @param {number} seq
 */
export async function loadAround(id, seq) {
  const held = S.convs.get(id);
  if (held && held.loaded && held.msgs.has(seq)) return;
  const c = newHistory();
  c.loading = true;
  S.convs.set(id, c); // an answer still coming for the old one is dropped (S.convs.get(id) !== c)
  try {
    const [upTo, after] = await Promise.all([
      api("GET", `/conversations/${enc(id)}/messages?before=${seq + 1}&limit=${PAGE}`),
      api("GET", `/conversations/${enc(id)}/messages?after=${seq}&limit=${PAGE}`),
    ]);
    if (S.convs.get(id) !== c) return;
    /** @type {import("./types.js").Message[]} */
    const messages = [...upTo.messages, ...after.messages];
    c.loaded = true;
    c.hasMore = upTo.messages.length >= PAGE && upTo.messages[0].seq > 1;
    c.minSeq = messages.length ? messages[0].seq : 0;
    c.maxSeq = c.minSeq ? c.minSeq - 1 : 0; // addToHistory walks it up the run just loaded
    addMessages(id, messages, after.messages.length < PAGE);
    if (S.openId === id) render({ pane: true });
    const now = S.entries.get(id);
    if (now && now.last_seq > c.maxSeq) catchUp(id);
  } catch (error) {
    if (error instanceof ApiError && error.status === 403) dropConversation(id, true);
    else if (S.convs.get(id) === c) {
      S.convs.delete(id); // not reached: the chat opens at its newest instead
      if (S.openId === id) loadLatest(id);
    }
  } finally {
    c.loading = false;
  }
}

/** @param {string} id */
export async function loadOlder(id) {
  const c = S.convs.get(id);
  if (!c || !c.loaded || !c.hasMore || c.older || !c.minSeq) return;
  c.older = true;
  const box = $("messages");
  try {
    const data = await api("GET",
      `/conversations/${enc(id)}/messages?before=${c.minSeq}&limit=${PAGE}`);
    if (S.convs.get(id) !== c) return;
    // Through addToHistory: an edit or recall that arrived live before this
    // page (its target not loaded then) applies to the target now.
    addToHistory(c, data.messages, false);
    if (data.messages.length) c.minSeq = data.messages[0].seq;
    c.hasMore = data.messages.length >= PAGE && c.minSeq > 1;
    if (S.openId === id) {
      const fromBottom = box.scrollHeight - box.scrollTop;
      renderPane();
      box.scrollTop = box.scrollHeight - fromBottom;
    }
  } catch {
    // try again on the next scroll
  } finally {
    c.older = false;
  }
}
