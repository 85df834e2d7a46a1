// @ts-check
// A chat-list entry's menu (PROTOCOL-v2 §5): pin, mute, mark unread or read, hide.
// The server keeps what is chosen, so every device of the user shows the same list.

import { $, el, notice } from "./dom.js";
import { closeConversation } from "./nav.js";
import { api, enc, mergeEntry } from "./people.js";
import { render } from "./render.js";
import { S } from "./state.js";

/**
 * The menu's items for an entry, in order: [label, action].
 * @param {import("./store.js").Entry} entry
 * @returns {[string, () => Promise<void>][]}
 */
function itemsOf(entry) {
  const id = entry.id;
  /** @type {[string, () => Promise<void>][]} */
  const items = [
    [entry.pinned ? "Unpin" : "Pin to top", () => patchEntry(id, { pinned: !entry.pinned })],
    [entry.muted ? "Unmute" : "Mute notifications", () => patchEntry(id, { muted: !entry.muted })],
  ];
  if (entry.unread > 0 || entry.marked_unread) {
    items.push(["Mark as read", () => markRead(id)]);
  } else {
    items.push(["Mark as unread", () => patchEntry(id, { marked_unread: true })]);
  }
  items.push(["Hide chat", () => hideEntry(id)]);
  return items;
}

/**
 * Change what the user keeps on an entry; the answer (and the other devices'
 * `conversation` event) carries the entry as it is now.
 * @param {string} id
 * @param {Record<string, unknown>} fields
 */
export async function patchEntry(id, fields) {
  try {
    const entry = await api("PATCH", `/conversations/${enc(id)}`, fields);
    mergeEntry(entry);
    render({ list: true });
  } catch {
    notice("Could not change the chat. Try again.");
  }
}

/** @param {string} id */
async function markRead(id) {
  const entry = S.entries.get(id);
  if (!entry) return;
  try {
    // A read clears the mark, even one that moves nothing (PROTOCOL-v2 §5).
    const updated = await api("POST", `/conversations/${enc(id)}/read`, { seq: entry.last_seq });
    mergeEntry(updated);
    render({ list: true });
  } catch {
    notice("Could not mark the chat read. Try again.");
  }
}

/** @param {string} id */
async function hideEntry(id) {
  if (S.openId === id) closeConversation();
  await patchEntry(id, { hidden: true });
}

/** @type {HTMLElement | null} the row (or button) to give the focus back to */
let returnTo = null;

/**
 * Open the menu of the entry `id` beside `anchor` (its row's button, or the row).
 * @param {string} id
 * @param {HTMLElement} anchor
 */
export function openEntryMenu(id, anchor) {
  const entry = S.entries.get(id);
  const menu = $("entry-menu");
  if (!entry || entry.local) return;
  returnTo = /** @type {HTMLElement | null} */ (anchor.closest(".chat")) || anchor;
  const buttons = itemsOf(entry).map(([label, act]) => {
    const button = el("button", "entry-menu-item", label);
    button.type = "button";
    button.setAttribute("role", "menuitem");
    button.tabIndex = -1;
    button.addEventListener("click", (/** @type {Event} */ event) => {
      event.stopPropagation();
      closeEntryMenu(true);
      act();
    });
    return button;
  });
  menu.replaceChildren(...buttons);
  menu.setAttribute("aria-label", `Actions for ${entry.title}`);
  menu.hidden = false;
  const box = anchor.getBoundingClientRect();
  const top = Math.min(box.bottom + 2, window.innerHeight - menu.offsetHeight - 8);
  menu.style.top = `${Math.max(8, top)}px`;
  menu.style.left = `${Math.max(8, Math.min(box.left, window.innerWidth - menu.offsetWidth - 8))}px`;
  buttons[0].focus();
}

/** @param {boolean} [refocus]  give the focus back to the row */
export function closeEntryMenu(refocus = false) {
  const menu = $("entry-menu");
  if (menu.hidden) return;
  menu.hidden = true;
  menu.replaceChildren();
  if (refocus && returnTo && returnTo.isConnected) returnTo.focus();
  returnTo = null;
}

/**
 * Keys inside the open menu: Up and Down move, Home and End jump, Escape and
 * Tab close it. True if handled.
 * @param {KeyboardEvent} event
 */
export function entryMenuKey(event) {
  const menu = $("entry-menu");
  const items = /** @type {HTMLElement[]} */ ([...menu.querySelectorAll(".entry-menu-item")]);
  const at = items.indexOf(/** @type {HTMLElement} */ (document.activeElement));
  if (event.key === "Escape" || event.key === "Tab") {
    closeEntryMenu(true);
    return event.key === "Escape";
  }
  const next = {
    ArrowDown: items[(at + 1) % items.length],
    ArrowUp: items[(at - 1 + items.length) % items.length],
    Home: items[0],
    End: items[items.length - 1],
  }[event.key];
  if (!next) return false;
  next.focus();
  return true;
}
