// @ts-check
// The chat list: every conversation, newest first, with its unread badge.

import { $, avatar, el, icon } from "./dom.js";

// A pin, and a bell struck through.
const PIN = "M9 3h6M10 3v6l-3 4h10l-3-4V3M12 13v8";
const MUTED = "M6 16h12l-1.5-2.5V10a4.5 4.5 0 0 0-7.6-3.3M7.5 10v3.5L6 16M10 19a2 2 0 0 0 4 0M4 4l16 16";
import { filterMatches, listTime, preview } from "./format.js";
import { userName } from "./people.js";
import { S, me } from "./state.js";
import { badgeOf, sortEntries, totalUnread } from "./store.js";
import { showTotal } from "./badge.js";

/** @param {import("./store.js").Entry} entry */
export function avatarKey(entry) {
  return entry.type === "group" ? `g${entry.group_id}` : `u${entry.peer_id}`;
}

/**
 * Move the list's one Tab stop to this row (and the focus, if asked).
 * @param {HTMLElement} item
 * @param {boolean} focus
 */
export function rove(item, focus) {
  for (const row of $("chat-list").querySelectorAll(".chat")) row.tabIndex = row === item ? 0 : -1;
  S.roving = item.dataset.id || null;
  if (focus) item.focus();
}

/**
 * A small mark beside an entry's title (pinned, muted), named for screen readers.
 * @param {string} kind
 * @param {string} label
 */
function mark(kind, label) {
  const node = el("span", `chat-mark ${kind}`);
  node.appendChild(icon(kind === "pin" ? PIN : MUTED));
  node.setAttribute("role", "img");
  node.setAttribute("aria-label", label);
  node.title = label;
  return node;
}

export function renderList() {
  const list = $("chat-list");
  const active = /** @type {any} */ (document.activeElement);
  const focused = active && active.closest ? active.closest(".chat") : null;
  const focusedId = focused && list.contains(focused) ? focused.dataset.id : null;
  // Hidden entries stay known (their unread is in the total) but are not listed.
  const entries = sortEntries([...S.entries.values()].filter((entry) => !entry.hidden));
  const total = totalUnread(S.entries.values());
  const shown = entries.filter((entry) => {
    const peer = entry.peer_id !== null ? S.users.get(entry.peer_id) : undefined;
    return filterMatches([entry.title, peer ? peer.username : ""], S.filter);
  });
  // One Tab stop for the whole list (the focused row, the last one, the open one, or the first).
  const ids = shown.map((entry) => entry.id);
  const stop = [focusedId, S.roving, S.openId].find((id) => id && ids.includes(id)) || ids[0];
  const lastPinned = shown.filter((entry) => entry.pinned).pop();
  const items = shown.map((entry) => {
    const item = el("li", "chat");
    if (entry.pinned) item.classList.add("pinned");
    if (entry === lastPinned && lastPinned !== shown[shown.length - 1]) {
      item.classList.add("pinned-last");
    }
    item.dataset.id = entry.id;
    item.setAttribute("role", "option");
    item.tabIndex = entry.id === stop ? 0 : -1;
    item.setAttribute("aria-selected", String(entry.id === S.openId));
    if (entry.id === S.openId) item.classList.add("active");
    item.appendChild(avatar(avatarKey(entry), entry.title));
    const main = el("div", "chat-main");
    const top = el("div", "chat-top");
    top.appendChild(el("span", "chat-title", entry.title));
    if (entry.pinned) top.appendChild(mark("pin", "Pinned"));
    if (entry.muted) top.appendChild(mark("muted", "Muted"));
    top.appendChild(el("span", "chat-time", entry.last_message ? listTime(entry.updated_at) : ""));
    const bottom = el("div", "chat-bottom");
    const draft = entry.id !== S.openId ? S.drafts[entry.id] : undefined;
    if (draft) {
      const line = el("span", "chat-preview");
      line.append(el("span", "draft", "[Draft]"), ` ${draft.replace(/\s+/g, " ")}`);
      bottom.appendChild(line);
    } else if (entry.removed) {
      bottom.appendChild(el("span", "chat-preview removed", "You are no longer a member"));
    } else {
      const line = el("span", "chat-preview");
      if ((entry.mentioned || 0) > 0) line.appendChild(el("span", "mention-mark", "[@me] "));
      line.append(preview(entry, me().id, userName));
      bottom.appendChild(line);
    }
    const shownBadge = badgeOf(entry);
    if (shownBadge) {
      const badge = el("span", `badge${shownBadge.muted ? " muted" : ""}${shownBadge.text ? "" : " dot"}`,
        shownBadge.text);
      badge.setAttribute("aria-label", shownBadge.label);
      bottom.appendChild(badge);
    }
    main.append(top, bottom);
    item.appendChild(main);
    if (!entry.local) {
      // For the mouse: not a control of its own (an option holds none), a
      // click on it opens the chat's menu (main.js); the keyboard opens the
      // same menu from the row with Shift+F10 or the menu key.
      const more = el("span", "chat-more", "⋯");
      more.setAttribute("aria-hidden", "true");
      more.title = "Pin, mute, mark unread, hide";
      item.setAttribute("aria-keyshortcuts", "Shift+F10");
      item.appendChild(more);
    }
    return item;
  });
  list.replaceChildren(...items);
  $("chat-empty").hidden = entries.length > 0;
  $("chat-nomatch").hidden = !entries.length || shown.length > 0;
  showTotal(total);
  if (focusedId) {
    const again = list.querySelector(`.chat[data-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus();
  }
}
