// @ts-check
// The chat list: every conversation, newest first, with its unread badge.

import { $, avatar, el } from "./dom.js";
import { filterMatches, listTime, preview } from "./format.js";
import { userName } from "./people.js";
import { S, me } from "./state.js";
import { sortEntries } from "./store.js";

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

export function renderList() {
  const list = $("chat-list");
  const active = /** @type {any} */ (document.activeElement);
  const focused = active && active.closest ? active.closest(".chat") : null;
  const focusedId = focused && list.contains(focused) ? focused.dataset.id : null;
  const entries = sortEntries(S.entries.values());
  let total = 0;
  for (const entry of entries) total += entry.unread;
  const shown = entries.filter((entry) => {
    const peer = entry.peer_id !== null ? S.users.get(entry.peer_id) : undefined;
    return filterMatches([entry.title, peer ? peer.username : ""], S.filter);
  });
  // One Tab stop for the whole list (the focused row, the last one, the open one, or the first).
  const ids = shown.map((entry) => entry.id);
  const stop = [focusedId, S.roving, S.openId].find((id) => id && ids.includes(id)) || ids[0];
  const items = shown.map((entry) => {
    const item = el("li", "chat");
    item.dataset.id = entry.id;
    item.setAttribute("role", "option");
    item.tabIndex = entry.id === stop ? 0 : -1;
    item.setAttribute("aria-selected", String(entry.id === S.openId));
    if (entry.id === S.openId) item.classList.add("active");
    item.appendChild(avatar(avatarKey(entry), entry.title));
    const main = el("div", "chat-main");
    const top = el("div", "chat-top");
    top.appendChild(el("span", "chat-title", entry.title));
    top.appendChild(el("span", "chat-time", entry.last_message ? listTime(entry.updated_at) : ""));
    const bottom = el("div", "chat-bottom");
    const draft = entry.id !== S.openId ? S.drafts[entry.id] : undefined;
    if (draft) {
      const line = el("span", "chat-preview");
      line.append(el("span", "draft", "Draft:"), ` ${draft.replace(/\s+/g, " ")}`);
      bottom.appendChild(line);
    } else if (entry.removed) {
      bottom.appendChild(el("span", "chat-preview removed", "You are no longer a member"));
    } else {
      const line = el("span", "chat-preview");
      if ((entry.mentioned || 0) > 0) line.appendChild(el("span", "mention-mark", "[@me] "));
      line.append(preview(entry, me().id, userName));
      bottom.appendChild(line);
    }
    if (entry.unread > 0) {
      const badge = el("span", "badge", entry.unread > 99 ? "99+" : String(entry.unread));
      badge.setAttribute("aria-label", `${entry.unread} unread`);
      bottom.appendChild(badge);
    }
    main.append(top, bottom);
    item.appendChild(main);
    return item;
  });
  list.replaceChildren(...items);
  $("chat-empty").hidden = entries.length > 0;
  $("chat-nomatch").hidden = !entries.length || shown.length > 0;
  document.title = total > 0 ? `(${total}) tidings` : "tidings";
  if (focusedId) {
    const again = list.querySelector(`.chat[data-id="${CSS.escape(focusedId)}"]`);
    if (again) again.focus();
  }
}
