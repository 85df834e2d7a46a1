// @ts-check
// What a person does to a message (PROTOCOL-v2 §2, §4): quote it, forward it,
// recall it, edit it; the composer's quote or edit bar; the @ picker; jumping
// to a quoted message. The rules (who may, what is shown) are in messages.js.

import { ApiError } from "./api.js";
import { $, el } from "./dom.js";
import { messageRights, runs } from "./group-rules.js";
import { loadOlder } from "./history.js";
import {
  canEdit, canRecall, mentionChoices, mentionQuery, quoteText,
} from "./messages.js";
import { api, enc, userName } from "./people.js";
import { render } from "./render.js";
import { S, me } from "./state.js";
import { sortEntries } from "./store.js";

/** @typedef {import("./types.js").Message} Message */
/** @typedef {import("./store.js").Entry} Entry */

/** @param {string} text  a short status line at the bottom of the screen */
export function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(Number(box.dataset.timer || 0));
  box.dataset.timer = String(setTimeout(() => { box.hidden = true; }, 4000));
}

/** @param {unknown} error */
const reason = (error) => (error instanceof ApiError ? error.message : "Network error, try again");

/**
 * What this user may do to the messages of a chat now (group-rules.messageRights).
 * @param {Entry} entry
 * @param {number} now
 */
function rightsIn(entry, now) {
  const group = entry.group_id === null ? undefined : S.groups.get(entry.group_id);
  if (!group) return { write: !entry.removed, recall: true, runs: false };
  const rights = messageRights(group, me().id, now);
  return { ...rights, write: rights.write && !entry.removed && !S.refused.has(entry.id) };
}

/**
 * The menu of one message: the actions this user may take on it now.
 * @param {Entry} entry
 * @param {Message} message
 */
export function actionsNode(entry, message) {
  const box = el("div", "msg-actions");
  /** @param {string} label @param {() => void} act */
  const add = (label, act) => {
    const button = el("button", "msg-action", label);
    button.type = "button";
    // Out of the Tab order: Tab goes from the message list to the composer in
    // one step; the keyboard reaches the menu with the arrows (messagesKey).
    button.tabIndex = -1;
    button.addEventListener("click", (/** @type {Event} */ event) => {
      event.stopPropagation();
      act();
    });
    box.appendChild(button);
  };
  const now = Date.now();
  const rights = rightsIn(entry, now);
  // Quoting and editing happen in the composer: not while it is closed.
  if (rights.write) add("Reply", () => startTarget("reply", entry, message));
  add("Forward", () => openForward(message));
  if (rights.recall && canRecall(message, me().id, rights.runs, now, S.limits.recall_seconds)) {
    add("Recall", () => recall(entry, message));
  }
  if (rights.write && canEdit(message, me().id, now, S.limits.edit_seconds)) {
    add("Edit", () => startTarget("edit", entry, message));
  }
  return box;
}

/**
 * Quote a message in the composer, or edit it there.
 * @param {"reply" | "edit"} mode
 * @param {Entry} entry
 * @param {Message} message
 */
export function startTarget(mode, entry, message) {
  S.target = { mode, conversation: entry.id, seq: message.seq, text: quoteText(message),
    sender: message.sender };
  const box = /** @type {HTMLTextAreaElement} */ ($("compose"));
  if (mode === "edit") box.value = message.body || "";
  renderTarget();
  box.focus();
}

export function cancelTarget() {
  if (S.target && S.target.mode === "edit") /** @type {HTMLTextAreaElement} */ ($("compose")).value = "";
  S.target = null;
  renderTarget();
}

/** The bar above the composer: "Replying to …" or "Editing", with a cancel button. */
export function renderTarget() {
  const bar = $("compose-target");
  const target = S.target && S.target.conversation === S.openId ? S.target : null;
  bar.hidden = !target;
  if (!target) return;
  const label = target.mode === "edit"
    ? "Editing your message"
    : `Replying to ${target.sender === me().id ? "yourself" : userName(target.sender)}: ${target.text ?? "[Recalled]"}`;
  $("compose-target-text").textContent = label;
}

/**
 * @param {Entry} entry
 * @param {Message} message
 */
async function recall(entry, message) {
  const key = `${entry.id}#${message.seq}`;
  if (message.sender === me().id && message.body) S.recalledText.set(key, message.body);
  try {
    await api("POST", `/conversations/${enc(entry.id)}/messages/${message.seq}/recall`, {});
  } catch (error) {
    S.recalledText.delete(key);
    toast(`Not recalled: ${reason(error)}`);
  }
}

/**
 * Put a recalled message's text back in the composer (WeChat's "Re-edit").
 * @param {string} text
 */
export function reEdit(text) {
  const box = /** @type {HTMLTextAreaElement} */ ($("compose"));
  box.value = text;
  box.focus();
  box.dispatchEvent(new Event("input"));
}

/** Send an edit from the composer; true when the composer's text was taken. */
export async function sendEdit() {
  const target = S.target;
  const box = /** @type {HTMLTextAreaElement} */ ($("compose"));
  if (!target || target.mode !== "edit") return false;
  const body = box.value;
  if (!body.trim()) return true;
  try {
    await api("POST",
      `/conversations/${enc(target.conversation)}/messages/${target.seq}/edit`, { body });
    S.target = null;
    box.value = "";
    renderTarget();
  } catch (error) {
    toast(`Not edited: ${reason(error)}`);
  }
  return true;
}

/** @param {Message} message */
function openForward(message) {
  S.forwarding = message;
  const list = $("forward-list");
  // Not where this user cannot send now (removed, muted, a dissolved group).
  const now = Date.now();
  const items = sortEntries(S.entries.values()).filter((e) => rightsIn(e, now).write).map((entry) => {
      const item = el("li");
      const button = el("button", "forward-to", entry.title);
      button.type = "button";
      button.addEventListener("click", () => forwardTo(entry.id));
      item.appendChild(button);
      return item;
    });
  list.replaceChildren(...items);
  /** @type {HTMLDialogElement} */ ($("dlg-forward")).showModal();
}

/** @param {string} conversation */
async function forwardTo(conversation) {
  const message = S.forwarding;
  /** @type {HTMLDialogElement} */ ($("dlg-forward")).close();
  if (!message) return;
  S.forwarding = null;
  try {
    await api("POST", `/conversations/${enc(conversation)}/messages`, {
      forward: { conversation: message.conversation, seq: message.seq },
    });
    toast("Forwarded");
  } catch (error) {
    toast(`Not forwarded: ${reason(error)}`);
  }
}

/**
 * Scroll to a quoted message and flash it, loading older pages until it is in.
 * @param {string} id
 * @param {number} seq
 */
export async function jumpTo(id, seq) {
  for (let tries = 0; tries < 40 && S.openId === id; tries++) {
    const row = $("messages").querySelector(`[data-seq="${seq}"]`);
    if (row) {
      row.scrollIntoView({ block: "center" });
      row.classList.add("flash");
      setTimeout(() => row.classList.remove("flash"), 1600);
      return;
    }
    const c = S.convs.get(id);
    if (!c || !c.hasMore || c.minSeq <= seq) {
      toast("That message is not shown here");
      return;
    }
    await loadOlder(id);
  }
}

/** The @ picker under the composer, in groups: shown while an "@word" is typed. */
export function updatePicker() {
  const picker = $("mention-picker");
  const box = /** @type {HTMLTextAreaElement} */ ($("compose"));
  const entry = S.openId ? S.entries.get(S.openId) : undefined;
  const group = entry && entry.group_id !== null ? S.groups.get(entry.group_id) : undefined;
  const query = group ? mentionQuery(box.value, box.selectionStart) : null;
  const choices = group && query
    ? mentionChoices(group.member_ids, query.query, userName, me().id, runs(group, me().id))
    : [];
  picker.hidden = choices.length === 0;
  picker.replaceChildren(...choices.map((choice) => {
    const item = el("li");
    const button = el("button", "mention-choice", choice.id === 0 ? "All (everyone)" : choice.name);
    button.type = "button";
    button.addEventListener("mousedown", (/** @type {Event} */ event) => event.preventDefault()); // keep the caret
    button.addEventListener("click", () => pick(choice.id, choice.name));
    item.appendChild(button);
    return item;
  }));
}

/** Enter in the composer while the picker is open picks its first choice; true if it did. */
export function pickFirst() {
  const first = /** @type {HTMLButtonElement | null} */ (
    $("mention-picker").hidden ? null : $("mention-picker").querySelector(".mention-choice"));
  if (!first) return false;
  first.click();
  return true;
}

/**
 * @param {number} id   0: all
 * @param {string} name
 */
function pick(id, name) {
  const box = /** @type {HTMLTextAreaElement} */ ($("compose"));
  const query = mentionQuery(box.value, box.selectionStart);
  if (!query) return;
  const word = `@${name} `;
  box.value = box.value.slice(0, query.start) + word + box.value.slice(box.selectionStart);
  const caret = query.start + word.length;
  box.setSelectionRange(caret, caret);
  S.picked.set(id, name);
  $("mention-picker").hidden = true;
  box.focus();
  render({});
}

/**
 * The message list by keyboard: Up and Down move between messages, Right
 * opens the focused message's menu (Left and Right move in it, Enter takes
 * the action), Left or Escape goes back to the message. True if handled.
 * @param {KeyboardEvent} event
 */
export function messagesKey(event) {
  const box = $("messages");
  const active = /** @type {HTMLElement | null} */ (document.activeElement);
  if (!active || !box.contains(active)) return false;
  const rows = /** @type {HTMLElement[]} */ ([...box.querySelectorAll(".msg[data-seq]")]);
  const row = /** @type {HTMLElement | null} */ (active.closest(".msg[data-seq]"));
  const inMenu = active.classList.contains("msg-action");
  /** @param {HTMLElement} target */
  const focus = (target) => {
    target.focus();
    target.scrollIntoView({ block: "nearest" });
  };
  if (event.key === "ArrowUp" || event.key === "ArrowDown") {
    if (!rows.length) return false;
    const at = row ? rows.indexOf(row) : rows.length;
    const next = event.key === "ArrowUp" ? Math.max(0, at - 1) : Math.min(rows.length - 1, at + 1);
    rows[next].tabIndex = -1;
    focus(rows[next]);
    return true;
  }
  if (!row) return false;
  const buttons = /** @type {HTMLElement[]} */ ([...row.querySelectorAll(".msg-action")]);
  if (event.key === "ArrowRight" && buttons.length) {
    const at = inMenu ? buttons.indexOf(active) : -1;
    focus(buttons[Math.min(buttons.length - 1, at + 1)]);
    return true;
  }
  if (event.key === "ArrowLeft" && inMenu) {
    const at = buttons.indexOf(active);
    focus(at > 0 ? buttons[at - 1] : row);
    return true;
  }
  if (event.key === "Escape" && inMenu) {
    focus(row);
    return true;
  }
  return false;
}
