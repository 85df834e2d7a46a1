// @ts-check
// Signing up, in and out; a session's start and end.

import { showTotal } from "./badge.js";
import { $, avatar } from "./dom.js";
import { fieldMessage } from "./format.js";
import { socket } from "./live.js";
import { openFromRoute, routeId } from "./nav.js";
import { api } from "./people.js";
import { dropPush, pushSupported, resumePush } from "./push.js";
import { render } from "./render.js";
import { S, draftsKey, load, pendingKey, peerReadKey, save } from "./state.js";
import { searcher } from "./view-search.js";

let signUpMode = false;

/** @param {boolean} signUp */
export function setAuthMode(signUp) {
  signUpMode = signUp;
  $("auth-title").textContent = signUp ? "Create your tidings account" : "Sign in to tidings";
  $("auth-submit").textContent = signUp ? "Sign up" : "Sign in";
  $("auth-display-row").hidden = !signUp;
  $("auth-switch-text").textContent = signUp ? "Have an account?" : "New here?";
  $("auth-switch").textContent = signUp ? "Sign in" : "Create an account";
  $("auth-password").autocomplete = signUp ? "new-password" : "current-password";
  $("auth-error").textContent = "";
}

export const toggleAuthMode = () => setAuthMode(!signUpMode);

/** @param {Event} event */
export async function submitAuth(event) {
  event.preventDefault();
  const username = $("auth-username").value.trim();
  const password = $("auth-password").value;
  const error = $("auth-error");
  error.textContent = "";
  if (signUpMode && !/^[A-Za-z0-9_.-]{3,32}$/.test(username)) {
    error.textContent = fieldMessage("username:");
    return;
  }
  if (username.length < 3 || password.length < 8) {
    error.textContent = signUpMode ? fieldMessage("password:")
      : "Enter your username and a password of 8 or more characters.";
    return;
  }
  $("auth-submit").disabled = true;
  try {
    if (signUpMode) {
      const display = $("auth-display").value.trim();
      await api("POST", "/users", display ? { username, password, display_name: display }
        : { username, password });
    }
    const session = await api("POST", "/sessions", { username, password });
    $("auth-password").value = "";
    save(localStorage, "tidings.session", { token: session.token, user: session.user });
    startSession(session.token, session.user);
  } catch (failure) {
    const code = /** @type {any} */ (failure).code;
    error.textContent = code === "username_taken" ? "That username is taken."
      : code === "unauthorized" ? "Wrong username or password."
        : failure instanceof Error ? fieldMessage(failure.message) : String(failure);
  } finally {
    $("auth-submit").disabled = false;
  }
}

/**
 * @param {string} token
 * @param {import("./types.js").User} me
 */
export function startSession(token, me) {
  S.token = token;
  S.me = me;
  S.users.set(me.id, me);
  S.pending = load(sessionStorage, pendingKey(), []);
  S.peerRead = load(localStorage, peerReadKey(), {});
  S.drafts = load(localStorage, draftsKey(), {});
  $("auth").hidden = true;
  $("app").hidden = false;
  $("me-name").textContent = me.display_name;
  $("me-name").title = `@${me.username} · id ${me.id}`;
  const mine = avatar(`u${me.id}`, me.display_name);
  $("me-avatar").replaceWith(mine);
  mine.id = "me-avatar";
  render({ list: true, pane: true });
  socket.connect();
  if (routeId()) openFromRoute();
  if (pushSupported()) resumePush();
}

function resetState() {
  S.token = null;
  socket.stop();
  S.entries.clear();
  S.convs.clear();
  S.groups.clear();
  S.pending = [];
  S.drafts = {};
  S.openId = null;
  S.filter = "";
  S.roving = null;
  S.newLine = null;
  S.jump = null;
  S.seen.clear();
  $("chat-filter").value = "";
  searcher.type(""); // an answer still coming is dropped
  S.me = null;
  showTotal(0);
  $("chat-list").replaceChildren();
  $("messages").replaceChildren();
  $("app").classList.remove("show-pane");
  if (routeId()) history.replaceState(null, "", location.pathname);
  localStorage.removeItem("tidings.session");
  $("app").hidden = true;
  $("auth").hidden = false;
  $("members").hidden = true;
}

/** @param {string} [message]  why, shown on the sign-in form */
export function signedOut(message) {
  if (!S.token) return;
  resetState();
  dropPush(null).catch(() => {}); // whoever signs in next must not get this person's pushes
  setAuthMode(false);
  $("auth-error").textContent = message || "";
  $("auth-username").focus();
}

export async function signOut() {
  const token = S.token;
  if (S.me) {
    sessionStorage.removeItem(pendingKey());
    localStorage.removeItem(draftsKey()); // signing out leaves nothing typed behind
  }
  resetState();
  setAuthMode(false);
  $("auth-username").focus();
  try {
    // While the token still works: the server forgets this browser's subscription.
    await dropPush(token);
  } catch {
    // offline: this browser unsubscribed anyway, so the push service refuses the next one
  }
  try {
    await fetch("/api/v1/sessions/current", { method: "DELETE",
      headers: { Authorization: `Bearer ${token}` } });
  } catch {
    // offline: the token dies with its storage here anyway
  }
}
