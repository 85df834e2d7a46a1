// @ts-check
// tidings web client: ES modules, no build step, no dependencies. This module
// wires the page's controls to the views and starts a session if one is stored.
//
// The protocol modules (types, api, frames, socket, store, format) hold no DOM
// and can be imported by any web app (docs/web-client.md); the rest are this
// client's state (state.js), data (people, history, live), navigation and views.

import { $ } from "./dom.js";
import { loadOlder } from "./history.js";
import { markOpenRead, noteTyping, saveDraft, sendMessage, socket } from "./live.js";
import { cancelTarget, messagesKey, pickFirst, updatePicker } from "./view-actions.js";
import { closeConversation, openConversation, openFromRoute } from "./nav.js";
import { setAuthMode, signOut, signedOut, startSession, submitAuth, toggleAuthMode } from "./session.js";
import { S, load } from "./state.js";
import { sizeComposer, updateLatest } from "./view-chat.js";
import { createGroup, startPrivateChat } from "./view-dialogs.js";
import { renderList, rove } from "./view-list.js";
import { openResult, renderSearch, resultKey, roveResult, searcher } from "./view-search.js";
import { closeEntryMenu, entryMenuKey, openEntryMenu } from "./view-entry.js";
import { READ_BY_REFRESH_MS, refreshReadBy } from "./view-readby.js";
import {
  addMember, dissolveGroup, leaveGroup, saveGroupSettings, toggleMembers,
} from "./view-members.js";
import { openProfile, saveName, savePassword, togglePush } from "./view-profile.js";
import { listenToWorker } from "./push.js";
import { saveNoticeSettings } from "./notices.js";
import { wireAttach } from "./view-attach.js";

/** @param {Event} event */
function chatFromEvent(event) {
  const item = /** @type {any} */ (event.target).closest(".chat");
  return item ? item.dataset.id : null;
}

function wire() {
  $("auth-form").addEventListener("submit", submitAuth);
  $("auth-switch").addEventListener("click", toggleAuthMode);
  $("btn-signout").addEventListener("click", signOut);
  $("btn-profile").addEventListener("click", openProfile);
  $("form-name").addEventListener("submit", saveName);
  $("form-password").addEventListener("submit", savePassword);
  $("notice-sound").addEventListener("change", saveNoticeSettings);
  $("notice-notify").addEventListener("change", saveNoticeSettings);
  $("btn-push").addEventListener("click", togglePush);
  listenToWorker((id, seq) => {
    if (S.token) openResult(id, seq);
  }, () => (S.token ? S.openId : null));
  $("btn-new-chat").addEventListener("click", () => {
    $("chat-user").value = "";
    $("chat-error").textContent = "";
    $("dlg-chat").showModal();
  });
  $("btn-new-group").addEventListener("click", () => {
    $("group-name").value = "";
    $("group-members").value = "";
    $("group-error").textContent = "";
    $("dlg-group").showModal();
  });
  for (const button of document.querySelectorAll("dialog [data-close]")) {
    button.addEventListener("click", () => button.closest("dialog")?.close());
  }
  $("form-chat").addEventListener("submit", startPrivateChat);
  $("form-group").addEventListener("submit", createGroup);

  const list = $("chat-list");
  list.addEventListener("click", (/** @type {Event} */ event) => {
    const more = /** @type {any} */ (event.target).closest(".chat-more");
    const id = chatFromEvent(event);
    if (more && id) openEntryMenu(id, more);
    else if (id) openConversation(id);
  });
  list.addEventListener("contextmenu", (/** @type {MouseEvent} */ event) => {
    const item = /** @type {any} */ (event.target).closest(".chat");
    if (!item) return;
    event.preventDefault();
    openEntryMenu(item.dataset.id, item);
  });
  const menu = $("entry-menu");
  menu.addEventListener("keydown", (/** @type {KeyboardEvent} */ event) => {
    if (entryMenuKey(event)) event.preventDefault();
  });
  document.addEventListener("mousedown", (/** @type {MouseEvent} */ event) => {
    if (!menu.hidden && !menu.contains(/** @type {Node} */ (event.target))) closeEntryMenu();
  });
  list.addEventListener("keydown", (/** @type {KeyboardEvent} */ event) => {
    const item = /** @type {any} */ (event.target).closest(".chat");
    if (!item) return;
    if (event.key === "ContextMenu" || (event.key === "F10" && event.shiftKey)) {
      event.preventDefault();
      openEntryMenu(item.dataset.id, item);
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openConversation(item.dataset.id);
    } else if (["ArrowDown", "ArrowUp", "Home", "End"].includes(event.key)) {
      event.preventDefault();
      const rows = [...list.querySelectorAll(".chat")];
      const at = rows.indexOf(item);
      const next = event.key === "Home" ? rows[0] : event.key === "End" ? rows[rows.length - 1]
        : event.key === "ArrowDown" ? rows[Math.min(at + 1, rows.length - 1)] : rows[Math.max(at - 1, 0)];
      if (next) rove(next, true);
    }
  });
  list.addEventListener("focusin", (/** @type {FocusEvent} */ event) => {
    const item = /** @type {any} */ (event.target).closest(".chat");
    if (item) rove(item, false);
  });
  const filter = $("chat-filter");
  const results = $("search-list");
  filter.addEventListener("input", () => {
    S.filter = filter.value;
    renderList();
    searcher.type(filter.value); // the messages too, once the typing pauses
  });
  filter.addEventListener("keydown", (/** @type {KeyboardEvent} */ event) => {
    // The chats first; with none matching, the messages found.
    const first = list.querySelector(".chat[tabindex='0']") || list.querySelector(".chat");
    const result = results.querySelector(".result[tabindex='0']");
    if (event.key === "ArrowDown" && (first || result)) {
      event.preventDefault();
      if (first) rove(first, true);
      else roveResult(result, true);
    } else if (event.key === "Enter" && (first || result)) {
      event.preventDefault();
      if (first) openConversation(list.querySelector(".chat").dataset.id);
      else openResult(result.dataset.conversation, Number(result.dataset.seq));
    } else if (event.key === "Escape" && filter.value) {
      filter.value = "";
      S.filter = "";
      renderList();
      searcher.type("");
    }
  });
  results.addEventListener("click", (/** @type {Event} */ event) => {
    const row = /** @type {any} */ (event.target).closest(".result");
    if (row) openResult(row.dataset.conversation, Number(row.dataset.seq));
  });
  results.addEventListener("keydown", (/** @type {KeyboardEvent} */ event) => {
    if (resultKey(event)) event.preventDefault();
  });
  results.addEventListener("focusin", (/** @type {FocusEvent} */ event) => {
    const row = /** @type {any} */ (event.target).closest(".result");
    if (row) roveResult(row, false);
  });
  $("search-more").addEventListener("click", () => searcher.more());
  renderSearch();

  $("btn-back").addEventListener("click", () => {
    const id = S.openId;
    closeConversation();
    $("app").classList.remove("show-pane"); // now, so the row below can take the focus
    const item = id && list.querySelector(`.chat[data-id="${CSS.escape(id)}"]`);
    if (item) item.focus();
  });
  $("btn-members").addEventListener("click", toggleMembers);
  $("btn-members-close").addEventListener("click", toggleMembers);
  $("members-add").addEventListener("submit", addMember);
  $("btn-leave").addEventListener("click", leaveGroup);
  $("group-settings").addEventListener("submit", saveGroupSettings);
  $("btn-dissolve").addEventListener("click", dissolveGroup);
  $("btn-forget").addEventListener("click", () => {
    const id = S.openId;
    if (!id) return;
    S.entries.delete(id);
    S.convs.delete(id);
    closeConversation();
    $("chat-filter").focus();
  });

  const compose = $("compose");
  compose.addEventListener("keydown", (/** @type {KeyboardEvent} */ event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      if (!pickFirst()) sendMessage();
    } else if (event.key === "Escape" && S.openId) {
      if (!$("mention-picker").hidden) $("mention-picker").hidden = true;
      else if (S.target) cancelTarget();
      else compose.blur();
    }
  });
  compose.addEventListener("input", () => {
    sizeComposer();
    saveDraft();
    updatePicker();
    noteTyping();
  });
  wireAttach();
  $("btn-target-cancel").addEventListener("click", () => {
    cancelTarget();
    compose.focus();
  });
  $("composer").addEventListener("submit", (/** @type {Event} */ event) => {
    event.preventDefault();
    sendMessage();
    compose.focus();
  });

  // A chat opened at a search result keeps it in view until the person moves:
  // scrolls, touches, clicks or types anywhere in the chat.
  for (const kind of ["wheel", "touchstart", "pointerdown", "keydown"]) {
    $("pane-chat").addEventListener(kind, () => {
      if (S.jump) S.jump.held = false;
    }, { capture: true, passive: true });
  }

  const box = $("messages");
  box.addEventListener("keydown", (/** @type {KeyboardEvent} */ event) => {
    if (messagesKey(event)) event.preventDefault();
  });
  box.addEventListener("scroll", () => {
    if (box.scrollTop < 80 && S.openId) loadOlder(S.openId);
    updateLatest();
  });
  $("btn-latest").addEventListener("click", () => {
    box.scrollTop = box.scrollHeight;
    box.focus();
  });

  window.addEventListener("hashchange", () => {
    if (S.token) openFromRoute();
  });
  window.addEventListener("online", () => socket.reconnectNow());
  // The browser knows the network is gone: say so now, not after a missed pong.
  window.addEventListener("offline", () => socket.abandon(4000));
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") {
      markOpenRead();
      socket.reconnectNow();
    }
  });
  window.addEventListener("focus", markOpenRead);
  // Another tab signed out (or in as someone else): follow it.
  window.addEventListener("storage", (event) => {
    if (event.key !== "tidings.session") return;
    const session = load(localStorage, "tidings.session", null);
    if (!session && S.token) signedOut("You signed out in another tab.");
    else if (session && (!S.me || session.user.id !== S.me.id)) location.reload();
  });
}

function main() {
  wire();
  setInterval(refreshReadBy, READ_BY_REFRESH_MS);
  const session = load(localStorage, "tidings.session", null);
  if (session && session.token && session.user) {
    startSession(session.token, session.user);
  } else {
    setAuthMode(false);
    $("auth").hidden = false;
    $("auth-username").focus();
  }
}

main();
