// @ts-check
// Users, groups and chat-list entries: fetched once, kept in the state, merged exactly.

import { ApiError, createApi } from "./api.js";
import { $, notice } from "./dom.js";
import { closeConversation } from "./nav.js";
import { render } from "./render.js";
import { signedOut } from "./session.js";
import { S, draftsKey, me, peerReadKey, save } from "./state.js";
import { mergeEntry as merged, withDraft } from "./store.js";
import { sync } from "./live.js";

export const enc = encodeURIComponent;

export const api = createApi({
  token: () => S.token,
  onUnauthorized: (path) => {
    if (path !== "/sessions") signedOut("Your session has ended. Sign in again.");
  },
});

/**
 * A user if known; else null, and the user is fetched (a render follows).
 * @param {number} id
 */
export function user(id) {
  const known = S.users.get(id);
  if (known) return known;
  if (!S.userFetches.has(id)) {
    const fetching = api("GET", `/users/${id}`)
      .then((found) => {
        S.users.set(id, found);
        render({ list: true, pane: true, members: true });
      })
      .catch(() => {})
      .finally(() => S.userFetches.delete(id));
    S.userFetches.set(id, fetching);
  }
  return null;
}

/** @param {number} id */
export function userName(id) {
  if (S.me && id === S.me.id) return S.me.display_name;
  const found = user(id);
  return found ? found.display_name : `User ${id}`;
}

/**
 * A username, or a numeric user id: GET /users?username= first, then by id.
 * @param {string} text
 * @returns {Promise<import("./types.js").User>}
 */
export async function resolveUser(text) {
  const wanted = text.trim().replace(/^@/, "");
  if (!wanted) throw new ApiError(422, "bad_request", "Enter a username or a user id.");
  const numeric = /^\d{1,18}$/.test(wanted);
  try {
    const found = await api("GET", `/users?username=${enc(wanted)}`);
    if (found && typeof found.id === "number") {
      S.users.set(found.id, found);
      return found;
    }
  } catch (error) {
    const status = error instanceof ApiError ? error.status : 0;
    if (![404, 405, 422].includes(status)) throw error;
    if (!numeric) {
      throw new ApiError(404, "not_found",
        status === 404 ? `No user named “${wanted}”.` : "Enter a numeric user id.");
    }
  }
  if (!numeric) throw new ApiError(404, "not_found", `No user named “${wanted}”.`);
  try {
    const found = await api("GET", `/users/${wanted}`);
    S.users.set(found.id, found);
    return found;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      throw new ApiError(404, "not_found", `No user with id ${wanted}.`);
    }
    throw error;
  }
}

/** @param {number} groupId */
export async function loadGroup(groupId) {
  try {
    const group = await api("GET", `/groups/${groupId}`);
    S.groups.set(groupId, group);
    S.refused.delete(`g:${groupId}`); // the group as it is now says whether one can send
    for (const id of group.member_ids) user(id);
    render({ pane: true, members: true });
    return group;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 403 || error.status === 404)) {
      dropConversation(`g:${groupId}`, true);
    }
    return null;
  }
}

/**
 * An entry from the server into the list (see store.mergeEntry), noting the peer's read.
 * @param {import("./types.js").Conversation} entry
 * @param {boolean} [live]
 */
export function mergeEntry(entry, live = true) {
  const next = merged(S.entries.get(entry.id), entry, live, live ? ++S.clock : 0);
  if (typeof entry.peer_read_seq === "number") notePeerRead(entry.id, entry.peer_read_seq);
  if (entry.last_message && entry.type === "private" && entry.last_message.sender !== me().id) {
    notePeerRead(entry.id, entry.last_message.seq);
  }
  S.entries.set(entry.id, next);
  if ("draft" in entry && !next.local) adoptDraft(entry.id, entry.draft ? entry.draft.body : "");
  return next;
}

/**
 * The server's draft of a conversation (v2 §5), from this device or another,
 * becomes this device's, in the composer too if that chat is open here;
 * unless the user typed here since this device last agreed with the server:
 * then this device's text is newer, and goes to the server at the pause.
 * @param {string} id
 * @param {string} text  "" for none
 */
export function adoptDraft(id, text) {
  const open = id === S.openId;
  const local = open ? $("compose").value : S.drafts[id] || "";
  const synced = S.draftSynced.get(id) ?? (S.drafts[id] || "");
  if (local !== synced) return;
  S.draftSynced.set(id, text);
  if (local === text) return;
  S.drafts = withDraft(S.drafts, id, text);
  save(localStorage, draftsKey(), S.drafts);
  if (open) $("compose").value = text;
  render({ list: true, pane: open });
}

/**
 * One conversation's entry: GET /conversations/{id}, else the whole list.
 * @param {string} id
 */
export function fetchEntry(id) {
  const running = S.entryFetches.get(id);
  if (running) return running;
  const fetching = api("GET", `/conversations/${enc(id)}`)
    .then((entry) => {
      const next = mergeEntry(entry);
      if (next.last_seq === 0 && next.type === "private") next.local = true;
      render({ list: true, pane: true });
      return next;
    })
    .catch(async (error) => {
      if (error instanceof ApiError && error.status === 403) {
        dropConversation(id, true);
        return null;
      }
      await sync();
      return S.entries.get(id) || null;
    })
    .finally(() => S.entryFetches.delete(id));
  S.entryFetches.set(id, fetching);
  return fetching;
}

/**
 * @param {string} id
 * @param {number} seq
 */
export function notePeerRead(id, seq) {
  if ((S.peerRead[id] || 0) >= seq) return;
  S.peerRead[id] = seq;
  save(localStorage, peerReadKey(), S.peerRead);
  if (S.openId === id) render({ pane: true });
}

/**
 * @param {string} id
 * @param {boolean} tellUser
 */
export function dropConversation(id, tellUser) {
  const entry = S.entries.get(id);
  // Told twice (the event, then again): once is enough. One's own leave drops it
  // even when its `conversation_removed` event came before the answer.
  if (tellUser && entry && entry.removed) return;
  if (tellUser && entry && !entry.local) {
    // Taken out by someone else: the chat stays, saying so, until dismissed.
    entry.removed = true;
    entry.unread = 0;
    if (S.openId === id) {
      S.membersOpen = false;
      $("members").hidden = true;
    }
    render({ list: true, pane: true });
    return;
  }
  S.entries.delete(id);
  S.convs.delete(id);
  if (S.openId === id) {
    closeConversation();
    if (tellUser && entry) notice(`You are no longer in “${entry.title}”.`);
  }
  render({ list: true });
}
