// @ts-check
// The profile dialog: the display name (PATCH /me), the password (POST /me/password),
// and notifications while tidings is closed (Web Push, push.js): turned on only
// by its button, so the browser's permission prompt never comes on its own.

import { ApiError, changePassword, displayNameProblem, newPasswordProblem, updateMe } from "./api.js";
import { $, avatar } from "./dom.js";
import { showNoticeSettings } from "./notices.js";
import { api } from "./people.js";
import { currentPushState, dropPush, turnOnPush } from "./push.js";
import { pushErrorText, pushStateText } from "./push-rules.js";
import { render } from "./render.js";
import { S, me, save } from "./state.js";

export function openProfile() {
  $("profile-name").value = me().display_name;
  $("profile-username").value = me().username;
  for (const id of ["profile-current", "profile-new", "profile-again"]) $(id).value = "";
  for (const id of ["profile-name-msg", "profile-password-msg"]) {
    $(id).textContent = "";
    $(id).className = "error";
  }
  showNoticeSettings();
  $("push-msg").textContent = "";
  showPush();
  $("dlg-profile").showModal();
  $("profile-name").focus();
}

/**
 * @param {string} id
 * @param {string} text
 * @param {boolean} ok
 */
function say(id, text, ok) {
  $(id).textContent = text;
  $(id).className = ok ? "ok" : "error";
}

/** @param {import("./types.js").User} user  the signed-in user, changed */
function showMe(user) {
  S.me = user;
  S.users.set(user.id, user);
  save(localStorage, "tidings.session", { token: S.token, user });
  $("me-name").textContent = user.display_name;
  const mine = avatar(`u${user.id}`, user.display_name);
  $("me-avatar").replaceWith(mine);
  mine.id = "me-avatar";
  render({ list: true, pane: true, members: true });
}

/** @param {Event} event */
export async function saveName(event) {
  event.preventDefault();
  const name = $("profile-name").value;
  const problem = displayNameProblem(name);
  if (problem) {
    say("profile-name-msg", problem, false);
    return;
  }
  try {
    showMe(await updateMe(api, name));
    say("profile-name-msg", "Display name saved.", true);
  } catch (failure) {
    say("profile-name-msg", failure instanceof ApiError && failure.status === 422
      ? "A display name is 1 to 64 characters." : messageOf(failure), false);
  }
}

/** @param {Event} event */
export async function savePassword(event) {
  event.preventDefault();
  const current = $("profile-current").value;
  const next = $("profile-new").value;
  if (!current) {
    say("profile-password-msg", "Enter your current password.", false);
    return;
  }
  const problem = newPasswordProblem(next, $("profile-again").value);
  if (problem) {
    say("profile-password-msg", problem, false);
    return;
  }
  try {
    await changePassword(api, current, next);
    for (const id of ["profile-current", "profile-new", "profile-again"]) $(id).value = "";
    say("profile-password-msg",
      "Password changed. Your other devices and browsers are signed out.", true);
  } catch (failure) {
    const status = failure instanceof ApiError ? failure.status : 0;
    say("profile-password-msg", status === 403 ? "The current password is wrong."
      : status === 422 ? "Choose a password of 8 to 256 characters." : messageOf(failure), false);
  }
}

/** @param {unknown} failure */
const messageOf = (failure) => (failure instanceof Error ? failure.message : String(failure));

/** @type {import("./push-rules.js").PushState} */
let pushShown = "off";

/** The push line and its button, as this browser stands now. */
async function showPush() {
  pushShown = await currentPushState();
  const { text, button } = pushStateText(pushShown);
  $("push-state").textContent = text;
  $("btn-push").hidden = button === null;
  $("btn-push").textContent = button || "";
}

/** The push button: on or off, a failure said quietly under it. */
export async function togglePush() {
  const button = $("btn-push");
  button.disabled = true;
  $("push-msg").textContent = pushShown === "on" ? "Turning off…" : "Turning on…";
  try {
    if (pushShown === "on") await dropPush(S.token);
    else await turnOnPush();
    $("push-msg").textContent = "";
  } catch (failure) {
    $("push-msg").textContent = pushErrorText(failure);
  } finally {
    button.disabled = false;
    await showPush();
  }
}
