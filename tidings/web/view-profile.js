// @ts-check
// The profile dialog: the display name (PATCH /me) and the password (POST /me/password).

import { ApiError, changePassword, displayNameProblem, newPasswordProblem, updateMe } from "./api.js";
import { $, avatar } from "./dom.js";
import { showNoticeSettings } from "./notices.js";
import { api } from "./people.js";
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
