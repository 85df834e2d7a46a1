// @ts-check
// Which conversation is open: the URL's #/{id}, kept in step with the pane.
// A link "#/{id}/{seq}" (a notification's) opens it at that message.

import { $ } from "./dom.js";
import { loadAround, loadLatest } from "./history.js";
import { markOpenRead, pushDraft } from "./live.js";
import { fetchEntry, loadGroup, user } from "./people.js";
import { closePushNotices } from "./push.js";
import { parseRoute, routeHash } from "./push-rules.js";
import { render } from "./render.js";
import { S } from "./state.js";
import { sizeComposer } from "./view-chat.js";

export function routeId() {
  return parseRoute(location.hash)?.id ?? null;
}

/** @param {string} id */
export function openConversation(id) {
  if (routeId() !== id) location.hash = `#/${id}`;
  else showConversation(id);
}

/** @param {string} id */
export function showConversation(id) {
  const changed = S.openId !== id;
  if (changed && S.openId) pushDraft(S.openId); // left with text typed: the other devices get it
  if (S.jump && S.jump.id !== id) S.jump = null;
  S.openId = id;
  const entry = S.entries.get(id);
  if (!entry) return;
  if (changed) {
    S.newLine = entry.unread > 0 ? { id, after: entry.read_seq } : null;
    S.membersOpen = false;
    $("members").hidden = true;
    $("compose").value = S.drafts[id] || "";
    sizeComposer();
  }
  if (entry.type === "group" && entry.group_id !== null) loadGroup(entry.group_id);
  else if (entry.peer_id !== null) user(entry.peer_id);
  render({ list: true, pane: true, scroll: S.newLine ? "unread" : "bottom" });
  loadLatest(id);
  if (changed) closePushNotices(id);
  markOpenRead();
  const active = /** @type {any} */ (document.activeElement);
  if (changed && window.matchMedia("(min-width: 721px)").matches) {
    $("compose").focus();
  } else if (changed && active && active.closest(".sidebar")) {
    // Phone: the list goes away; keep the keyboard's place without popping one up.
    render({ focus: "messages" });
  }
}

export function closeConversation() {
  if (S.openId) pushDraft(S.openId);
  S.openId = null;
  S.jump = null;
  S.membersOpen = false;
  $("members").hidden = true;
  if (routeId()) history.replaceState(null, "", location.pathname);
  render({ list: true, pane: true });
}

export async function openFromRoute() {
  const route = parseRoute(location.hash);
  if (!route) {
    if (S.openId) closeConversation();
    return;
  }
  const id = route.id;
  if (route.seq) {
    // Held in view like a search result; the URL keeps only the chat.
    history.replaceState(null, "", routeHash(id, null));
    S.jump = { id, seq: route.seq, at: Date.now(), held: true };
    loadAround(id, route.seq);
  }
  if (!S.entries.has(id)) {
    const entry = await fetchEntry(id);
    if (!entry) {
      closeConversation();
      return;
    }
  }
  showConversation(id);
}
