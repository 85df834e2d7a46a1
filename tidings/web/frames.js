// @ts-check
// The WebSocket frames of the protocol: building what the client sends, reading
// what the server sends, and what an error answer means for a pending send.

/** @typedef {import("./types.js").ClientFrame} ClientFrame */
/** @typedef {import("./types.js").ServerFrame} ServerFrame */

/** @param {string} token @returns {ClientFrame} */
export const authFrame = (token) => ({ type: "auth", token });

/** @param {unknown} [ref] @returns {ClientFrame} */
export const pingFrame = (ref) => (ref === undefined ? { type: "ping" } : { type: "ping", ref });

/**
 * A send, with the ref `m:{client_msg_id}` so its answer finds it again; a
 * quote and mentions (PROTOCOL-v2 §2) only when there are any; a file's kind and id.
 * @param {{cmid: string, conversation: string, body: string, reply_to?: number | null,
 *   mentions?: number[], mention_all?: boolean, kind?: "image" | "file" | "voice",
 *   file_id?: string}} pending
 * @returns {ClientFrame}
 */
export function sendFrame(pending) {
  /** @type {ClientFrame} */
  const frame = {
    type: "send",
    ref: `m:${pending.cmid}`,
    conversation: pending.conversation,
    body: pending.body,
    client_msg_id: pending.cmid,
  };
  if (pending.reply_to) frame.reply_to = pending.reply_to;
  if (pending.mentions && pending.mentions.length) frame.mentions = pending.mentions;
  if (pending.mention_all) frame.mention_all = true;
  if (pending.kind && pending.file_id) {
    frame.kind = pending.kind;
    frame.file_id = pending.file_id;
  }
  return frame;
}

/**
 * @param {string} ref
 * @param {string} conversation
 * @param {number} seq
 * @returns {ClientFrame}
 */
export const readFrame = (ref, conversation, seq) => ({ type: "read", ref, conversation, seq });

/**
 * "I am typing here" (PROTOCOL-v2 §5): no answer comes; send one at most every
 * TYPING_INTERVAL_MS while the user types (the server relays no more often).
 * @param {string} conversation
 * @returns {ClientFrame}
 */
export const typingFrame = (conversation) => ({ type: "typing", conversation });

export const TYPING_INTERVAL_MS = 2000;

/**
 * A server frame, or null for anything that is not a JSON object with a string type.
 * @param {string} text
 * @returns {ServerFrame | null}
 */
export function parseServerFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return null;
  }
  return frame && typeof frame === "object" && typeof frame.type === "string" ? frame : null;
}

/**
 * The client_msg_id an error answers, if it answers a send of this client.
 * @param {unknown} ref
 */
export function sendRefId(ref) {
  return typeof ref === "string" && ref.startsWith("m:") ? ref.slice(2) : null;
}

/** Codes after which the same send (same client_msg_id) is tried again. */
const RETRIED = new Set(["unavailable", "rate_limited", "internal"]);

/**
 * What an error answer to a send means: try again, or a failure to show.
 * @param {string} code
 * @param {string} [message]
 * @returns {{retry: true} | {retry: false, label: string}}
 */
export function sendOutcome(code, message) {
  if (RETRIED.has(code)) return { retry: true };
  if (code === "too_large") return { retry: false, label: "Too long" };
  if (code === "not_member") return { retry: false, label: "Not a member" };
  if (code === "forbidden") return { retry: false, label: message || "Not allowed" };
  if (code === "muted") return { retry: false, label: "Not sent: you are muted here" };
  if (code === "group_dissolved") return { retry: false, label: "Not sent: the group was dissolved" };
  return { retry: false, label: message || "Not sent" };
}
