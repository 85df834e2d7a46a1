// @ts-check
// "2 read · 3 unread" under one's own latest group messages (PROTOCOL-v2 §6),
// and the names behind it. Members' reads are not sent to the sender as
// events in a group, so the counts are asked for: once when shown, again
// every 15 s while the chat is open in a visible tab, and on a click.

import { $, el } from "./dom.js";
import { readByText } from "./format.js";
import { api, enc, userName } from "./people.js";
import { render } from "./render.js";
import { S } from "./state.js";

/** One's own latest group messages that show it. */
export const READ_BY_SHOWN = 5;
export const READ_BY_REFRESH_MS = 15000;

/** @type {Map<string, import("./types.js").ReadBy>} "{conversation}#{seq}" -> the last answer */
const known = new Map();
/** @type {Set<string>} */
const asking = new Set();

/**
 * The read-by line of one own message; asks the server the first time.
 * @param {string} conversation
 * @param {number} seq
 */
export function readByNode(conversation, seq) {
  const key = `${conversation}#${seq}`;
  const found = known.get(key);
  if (!found) ask(conversation, seq);
  const text = found ? readByText(found) : "";
  const button = el("button", "status read-by", text || "…");
  button.type = "button";
  button.title = "Who read it";
  button.setAttribute("aria-label", text ? `${text}: who read it` : "Who read it");
  button.addEventListener("click", () => showReadBy(conversation, seq));
  return button;
}

/**
 * @param {string} conversation
 * @param {number} seq
 * @returns {Promise<import("./types.js").ReadBy | null>}
 */
async function ask(conversation, seq) {
  const key = `${conversation}#${seq}`;
  if (asking.has(key)) return known.get(key) || null;
  asking.add(key);
  try {
    const found = await api("GET", `/conversations/${enc(conversation)}/messages/${seq}/reads`);
    const before = known.get(key);
    known.set(key, found);
    if (conversation === S.openId && (!before || readByText(before) !== readByText(found))) {
      render({ pane: true });
    }
    return found;
  } catch {
    return null; // a recalled message, a left group: the line stays as it was
  } finally {
    asking.delete(key);
  }
}

/** Ask again for the open chat's lines (the interval in main.js). */
export function refreshReadBy() {
  const id = S.openId;
  if (!id || document.visibilityState !== "visible") return;
  for (const key of known.keys()) {
    const at = key.lastIndexOf("#");
    if (key.slice(0, at) === id) ask(id, Number(key.slice(at + 1)));
  }
}

/**
 * The names behind a line, fresh from the server, in a dialog.
 * @param {string} conversation
 * @param {number} seq
 */
async function showReadBy(conversation, seq) {
  const found = await ask(conversation, seq);
  if (!found) return;
  /** @param {string} id @param {number[]} ids @param {string} title */
  const fill = (id, ids, title) => {
    $(`${id}-title`).textContent = `${title} (${ids.length})`;
    $(id).replaceChildren(...ids.map((user) => el("li", null, userName(user))));
  };
  fill("readby-read", found.read_ids, "Read");
  fill("readby-unread", found.unread_ids, "Unread");
  $("dlg-readby").showModal();
}
