// @ts-check
// Pure state updates of the chat list and of a conversation's history: each takes
// the current value and what happened, and says what changed. No DOM, no I/O.

import { applyNotice } from "./messages.js";

/** @typedef {import("./types.js").Conversation} Conversation */
/** @typedef {import("./types.js").Message} Message */

/**
 * A chat-list entry as the client keeps it: `local` until the server knows the
 * conversation (a private chat before its first message), `clock` the live
 * update that last touched it (a list fetched before that cannot undo it),
 * `removed` once the user was taken out of it (kept, so the chat says so).
 * @typedef {Conversation & {local: boolean, clock: number, removed?: boolean}} Entry
 */

/**
 * The loaded part of one conversation's history.
 * @typedef {object} History
 * @property {Map<number, Message>} msgs  by seq
 * @property {boolean} loaded    the newest page is in
 * @property {boolean} loading
 * @property {boolean} hasMore   older messages exist on the server
 * @property {number} minSeq     the oldest loaded seq (0: none)
 * @property {number} maxSeq     every seq up to this one is loaded
 * @property {boolean} catching  a catch-up is running
 * @property {boolean} again     another catch-up was asked for meanwhile
 * @property {boolean} older     an older page is on its way
 */

/** @returns {History} */
export function newHistory() {
  return { msgs: new Map(), loaded: false, loading: false, hasMore: false, minSeq: 0,
    maxSeq: 0, catching: false, again: false, older: false };
}

/**
 * When an entry last changed, for the list's order (PROTOCOL-v2 §5): the later
 * of its message's time and its draft's.
 * @param {Conversation} entry
 */
export function entryTime(entry) {
  const draft = entry.draft;
  return draft && draft.updated_at > entry.updated_at ? draft.updated_at : entry.updated_at;
}

/**
 * As the server orders them: pinned first, then newest first (the later of
 * the entry's and its draft's time), then by id.
 * @template {Conversation} T
 * @param {Iterable<T>} entries
 * @returns {T[]}
 */
export function sortEntries(entries) {
  return [...entries].sort((a, b) => {
    if (Boolean(a.pinned) !== Boolean(b.pinned)) return a.pinned ? -1 : 1;
    const at = entryTime(a);
    const bt = entryTime(b);
    return at < bt ? 1 : at > bt ? -1 : a.id < b.id ? -1 : 1;
  });
}

/**
 * PROTOCOL-v2 §5's total_unread: over entries not muted, the unread count, an
 * entry marked unread with none counting 1. The page title shows it.
 * @param {Iterable<Conversation>} entries
 */
export function totalUnread(entries) {
  let total = 0;
  for (const entry of entries) {
    if (entry.muted) continue;
    total += entry.unread > 0 ? entry.unread : entry.marked_unread ? 1 : 0;
  }
  return total;
}

/**
 * The badge of an entry: its count, a dot for one marked unread with none, or
 * nothing; `muted` greys it (it is left out of the total).
 * @param {Conversation} entry
 * @returns {{text: string, label: string, muted: boolean} | null}
 */
export function badgeOf(entry) {
  const muted = Boolean(entry.muted);
  if (entry.unread > 0) {
    const text = entry.unread > 99 ? "99+" : String(entry.unread);
    return { text, label: `${entry.unread} unread${muted ? ", muted" : ""}`, muted };
  }
  if (entry.marked_unread) return { text: "", label: "marked unread", muted };
  return null;
}

/**
 * An entry from the server merged over what the client has: a live event may be
 * newer than a list fetched just before it, so positions never move back.
 * @param {Entry | undefined} old
 * @param {Conversation} entry
 * @param {boolean} live   from an event (true) or a fetched list (false)
 * @param {number} clock   this update's clock, for a live one
 * @returns {Entry}
 */
export function mergeEntry(old, entry, live, clock) {
  /** @type {Entry} */
  let next = { ...entry, local: false, clock: live ? clock : old ? old.clock : 0 };
  if (old && !old.local) {
    if (old.last_seq > next.last_seq) {
      next = { ...next, last_seq: old.last_seq, last_message: old.last_message,
        updated_at: old.updated_at, unread: old.unread };
    }
    if (old.read_seq > next.read_seq) {
      next = { ...next, read_seq: old.read_seq, unread: Math.min(old.unread, next.unread) };
    }
  }
  return next;
}

/**
 * A message event on its entry; false when the entry already had it.
 * @param {Entry} entry
 * @param {Message} message
 * @param {number} me
 * @param {number} clock
 */
export function applyMessage(entry, message, me, clock) {
  if (message.seq <= entry.last_seq) return false;
  entry.last_seq = message.seq;
  entry.local = false;
  entry.clock = clock;
  const kind = message.kind || "text";
  if (kind === "edit") {
    // An edit does not move the chat; it changes the last message if that is its target.
    const last = entry.last_message;
    if (last && last.seq === message.target_seq) {
      entry.last_message = { ...last, body: message.body, edited_at: message.sent_at };
    }
  } else {
    entry.last_message = message;
    entry.updated_at = message.sent_at;
  }
  // A countable message brings a hidden entry back (PROTOCOL-v2 §5).
  if (COUNTED.has(kind)) entry.hidden = false;
  // A group change's notice is one's own when one made the change (its actor):
  // the business backend's are sent in the owner's name and read nothing.
  const system = /** @type {{actor?: number | null} | null | undefined} */ (message.system);
  const own = kind === "system" ? Boolean(system && system.actor === me) : message.sender === me;
  if (own) {
    entry.read_seq = message.seq; // sending (a message, a recall, an edit) marks all before it read
    entry.unread = 0;
    entry.mentioned = 0;
    entry.marked_unread = false;
    if (COUNTED.has(kind)) entry.draft = null; // a send clears one's draft there
  } else if (COUNTED.has(kind)) {
    entry.unread += 1;
    if (message.mention_all || (message.mentions || []).includes(me)) {
      entry.mentioned = (entry.mentioned || 0) + 1;
    }
  }
  return true;
}

/** Kinds that count as unread (PROTOCOL-v2 §1); notices never do. */
const COUNTED = new Set(["text", "image", "file", "voice"]);

/**
 * The user's own read position moved (on another device, or here).
 * "exact": the count is known (nothing left); "refetch": some is left, ask the server
 * for the exact count; "ignored": not a move forward.
 * @param {Entry} entry
 * @param {number} seq
 * @returns {"exact" | "refetch" | "ignored"}
 */
export function applyOwnRead(entry, seq) {
  if (seq <= entry.read_seq) return "ignored";
  entry.marked_unread = false; // a read clears the mark (PROTOCOL-v2 §5)
  entry.read_seq = seq;
  if (seq >= entry.last_seq) {
    entry.unread = 0;
    entry.mentioned = 0;
    return "exact";
  }
  return "refetch";
}

/**
 * Messages into a loaded history, deduped by seq. `complete`: the server has
 * nothing after the highest of them. True when a gap remains (catch up).
 * @param {History} history
 * @param {Message[]} messages
 * @param {boolean} complete
 */
export function addToHistory(history, messages, complete) {
  for (const message of messages) {
    if (!history.msgs.has(message.seq)) history.msgs.set(message.seq, message);
  }
  // A recall or edit changes its target here too (when the target is loaded).
  for (const message of messages) applyNotice(history.msgs, message);
  // A target loaded after its notice (an older page): the notice, already here, applies now.
  const arrived = new Set(messages.map((m) => m.seq));
  for (const message of [...history.msgs.values()]) {
    const target = message.target_seq;
    if (target != null && arrived.has(target)) applyNotice(history.msgs, message);
  }
  if (!history.minSeq && messages.length) history.minSeq = Math.min(...messages.map((m) => m.seq));
  while (history.msgs.has(history.maxSeq + 1)) history.maxSeq += 1;
  if (complete) {
    history.maxSeq = Math.max(history.maxSeq, ...history.msgs.keys());
    return false;
  }
  return [...history.msgs.keys()].some((seq) => seq > history.maxSeq);
}

/**
 * Entries a fresh list no longer has (left or removed while away), unless they
 * are local or a live update touched them after the list was asked for.
 * @param {Map<string, Entry>} entries
 * @param {Set<string>} listed
 * @param {number} askedAt  the clock when the list was asked for
 */
export function goneEntries(entries, listed, askedAt) {
  return [...entries].filter(([id, entry]) =>
    !listed.has(id) && !entry.local && !(entry.clock > askedAt)).map(([id]) => id);
}

/**
 * Where to mark a conversation read: the highest seq that was on screen in a
 * visible tab, if that moves the read position forward; 0 when nothing should
 * be sent (a hidden tab, or nothing new seen). What was never on screen is
 * never marked read.
 * @param {Iterable<number>} seenSeqs  seqs of the messages on screen now
 * @param {number} readSeq             the read position already held
 * @param {boolean} visible            document.visibilityState === "visible"
 */
export function readUpTo(seenSeqs, readSeq, visible) {
  if (!visible) return 0;
  let top = 0;
  for (const seq of seenSeqs) if (seq > top) top = seq;
  return top > readSeq ? top : 0;
}

/**
 * Unread messages after a read position: others' messages in the loaded
 * history, plus every seq past what is loaded.
 * @param {History | undefined} history
 * @param {number} readSeq
 * @param {number} lastSeq
 * @param {number} me
 */
export function unreadAfter(history, readSeq, lastSeq, me) {
  if (readSeq >= lastSeq) return 0;
  if (!history || !history.loaded) return lastSeq - readSeq;
  let count = 0;
  for (const message of history.msgs.values()) {
    if (message.seq > readSeq && message.sender !== me && COUNTED.has(message.kind || "text")
      && !message.recalled) count += 1;
  }
  return count + Math.max(0, lastSeq - Math.max(history.maxSeq, readSeq));
}

/**
 * The drafts (conversation id -> unsent text) with one conversation's text
 * set; an empty or blank text removes it. A new object: the old one is kept.
 * @param {Record<string, string>} drafts
 * @param {string} id
 * @param {string} text
 * @returns {Record<string, string>}
 */
export function withDraft(drafts, id, text) {
  const next = { ...drafts };
  if (text.trim()) next[id] = text;
  else delete next[id];
  return next;
}
