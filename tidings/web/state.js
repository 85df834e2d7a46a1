// @ts-check
// The web client's one state object, and what it keeps in the browser's storage.

/** @typedef {import("./store.js").Entry} Entry */
/** @typedef {import("./store.js").History} History */

/**
 * A message typed here and not yet acked (kept in sessionStorage: a reload keeps it).
 * @typedef {object} Pending
 * @property {string} cmid           its client_msg_id: a resend never stores it twice
 * @property {string} conversation
 * @property {string} body
 * @property {"sending" | "failed"} state
 * @property {string | null} error
 * @property {number | null} [reply_to]   v2: the seq it quotes
 * @property {number[]} [mentions]
 * @property {boolean} [mention_all]
 * @property {"image" | "file" | "voice"} [kind]   v2: a message with an uploaded file
 * @property {string} [file_id]
 * @property {import("./types.js").Attachment} [attachment]  the upload's answer, drawn meanwhile
 */

/**
 * What the composer is doing beside plain writing: quoting a message, or editing one.
 * @typedef {{mode: "reply" | "edit", conversation: string, seq: number, text: string | null,
 *   sender: number}} ComposeTarget
 */

/**
 * A message a chat was opened at (a search result): every redraw keeps it in
 * view while `held` (until the person scrolls or acts in the chat), and it is
 * highlighted for a moment from `at`.
 * @typedef {{id: string, seq: number, at: number, held: boolean}} Jump
 */

export const PAGE = 50;
export const CATCH_UP_PAGE = 200;

export const S = {
  /** @type {string | null} */
  token: null,
  /** @type {import("./types.js").User | null} */
  me: null,
  /** @type {Map<string, Entry>} conversation id -> chat-list entry */
  entries: new Map(),
  /** @type {Map<string, History>} conversation id -> loaded history */
  convs: new Map(),
  /** @type {Map<number, import("./types.js").User>} */
  users: new Map(),
  /** @type {Map<number, Promise<void>>} */
  userFetches: new Map(),
  /** @type {Map<number, import("./types.js").Group>} */
  groups: new Map(),
  /** @type {Map<string, Promise<Entry | null>>} */
  entryFetches: new Map(),
  /** @type {Pending[]} */
  pending: [],
  /** @type {Record<string, string>} conversation id -> the unsent text typed there */
  drafts: {},
  /** @type {Record<string, number>} private conversation id -> the peer's read seq */
  peerRead: {},
  /** @type {string | null} */
  openId: null,
  syncGen: 0,
  refs: 0,
  membersOpen: false,
  filter: "",
  /** @type {string | null} the chat-list row that is the list's one Tab stop */
  roving: null,
  /** @type {Set<number>} seqs of the open conversation's messages on screen now */
  seen: new Set(),
  /** @type {{id: string, after: number} | null} the "new messages" line of the open chat */
  newLine: null,
  /** @type {Jump | null} a message opened from the search results */
  jump: null,
  connState: "",
  /** @type {ComposeTarget | null} */
  target: null,
  /** @type {Map<number, string>} who the composer's text @s (id 0: all) -> name */
  picked: new Map(),
  /** @type {Map<string, string>} "{conversation}#{seq}" -> the text of an own recalled message */
  recalledText: new Map(),
  /** @type {{max_body_chars: number, recall_seconds: number, edit_seconds: number}} */
  limits: { max_body_chars: 4000, recall_seconds: 120, edit_seconds: 86400 },
  /** @type {import("./types.js").Message | null} the message being forwarded */
  forwarding: null,
  /** @type {Map<string, Map<number, number>>} conversation -> who types there -> shown until (ms) */
  typing: new Map(),
  /** @type {Map<string, number>} conversation -> when this client last said it types there */
  typingSent: new Map(),
  /** @type {Map<string, string>} conversation -> the draft text the server last had from here */
  draftSynced: new Map(),
  /** @type {Map<string, string>} group conversation -> the code of a send just refused
   * (muted, group_dissolved): the composer stays closed until the group is read again */
  refused: new Map(),
  clock: 0, // counts live updates of entries, so a list fetched earlier cannot drop them
};

/** The signed-in user (only called while signed in). */
export function me() {
  if (!S.me) throw new Error("not signed in");
  return S.me;
}

/**
 * @param {Storage} storage
 * @param {string} key
 * @param {any} fallback
 */
export function load(storage, key, fallback) {
  try {
    const raw = storage.getItem(key);
    return raw ? JSON.parse(raw) : fallback;
  } catch {
    return fallback;
  }
}

/**
 * @param {Storage} storage
 * @param {string} key
 * @param {unknown} value
 */
export function save(storage, key, value) {
  try {
    storage.setItem(key, JSON.stringify(value));
  } catch {
    // storage full or disabled: the client still works for this page's life
  }
}

export const pendingKey = () => `tidings.pending.${me().id}`;
export const peerReadKey = () => `tidings.peerRead.${me().id}`;
export const savePending = () => save(sessionStorage, pendingKey(), S.pending);
export const draftsKey = () => `tidings.drafts.${me().id}`;
