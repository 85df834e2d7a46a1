// @ts-check
// The "Messages" section under the chat list: what the chat filter's text finds
// in messages (PROTOCOL-v2 §7), grouped by conversation, each match marked; a
// result opens its chat at that message. The rules are in search.js.

import { $, avatar, el } from "./dom.js";
import { listTime } from "./format.js";
import { loadAround } from "./history.js";
import { openConversation } from "./nav.js";
import { api, enc, fetchEntry, userName } from "./people.js";
import { render } from "./render.js";
import { SearchRunner, groupByConversation, snippetParts } from "./search.js";
import { S, me } from "./state.js";
import { avatarKey } from "./view-list.js";

const RESULTS_PAGE = 20;

export const searcher = new SearchRunner({
  fetchPage: (q, before) => api("GET", `/search/messages?q=${enc(q)}&limit=${RESULTS_PAGE}`
    + (before ? `&before=${enc(before)}` : "")),
  onChange: () => renderSearch(),
});

/** Conversations whose entry was asked for once (a result in a chat not in the list). */
const asked = new Set();

/** The result row that is the results' one Tab stop ("{conversation}#{seq}"). */
let roving = "";

/** @param {HTMLElement} row */
const keyOf = (row) => `${row.dataset.conversation}#${row.dataset.seq}`;

/**
 * Move the results' one Tab stop to this row (and the focus, if asked).
 * @param {HTMLElement} row
 * @param {boolean} focus
 */
export function roveResult(row, focus) {
  for (const other of $("search-list").querySelectorAll(".result")) {
    other.tabIndex = other === row ? 0 : -1;
  }
  roving = keyOf(row);
  if (focus) row.focus();
}

/**
 * One result: who sent it, the text around the match with the match marked
 * (text nodes and <mark> elements: a message is never parsed as HTML), when.
 * @param {import("./types.js").Message} message
 * @param {string} query
 */
function resultRow(message, query) {
  const row = el("div", "result");
  row.setAttribute("role", "option");
  row.setAttribute("aria-selected", "false");
  row.dataset.conversation = message.conversation;
  row.dataset.seq = String(message.seq);
  const top = el("div", "result-top");
  top.append(el("span", "result-sender", message.sender === me().id ? "You" : userName(message.sender)),
    el("span", "result-time", listTime(message.sent_at)));
  const text = el("div", "result-text");
  for (const part of snippetParts(message.body || "", query)) {
    text.appendChild(part.match ? el("mark", null, part.text) : document.createTextNode(part.text));
  }
  row.append(top, text);
  return row;
}

export function renderSearch() {
  const state = searcher.state;
  const section = $("search");
  const list = $("search-list");
  section.hidden = state.status === "idle";
  const active = /** @type {any} */ (document.activeElement);
  const focused = active && list.contains(active) && active.closest ? active.closest(".result") : null;
  const focusedKey = focused ? keyOf(focused) : null;
  /** @type {HTMLElement[]} */
  const groups = [];
  for (const group of groupByConversation(state.messages)) {
    const entry = S.entries.get(group.conversation);
    if (!entry && !asked.has(group.conversation)) {
      asked.add(group.conversation);
      fetchEntry(group.conversation); // a render follows with its title
    }
    const title = entry ? entry.title : "…";
    const node = el("div", "result-group");
    node.setAttribute("role", "group");
    node.setAttribute("aria-label", title);
    const head = el("div", "result-head");
    head.setAttribute("aria-hidden", "true"); // the group's label says it
    if (entry) head.appendChild(avatar(avatarKey(entry), title, "small"));
    head.appendChild(el("span", "result-title", title));
    node.appendChild(head);
    for (const message of group.messages) node.appendChild(resultRow(message, state.query));
    groups.push(node);
  }
  list.replaceChildren(...groups);
  list.hidden = groups.length === 0; // a listbox with no option is not offered
  const rows = /** @type {HTMLElement[]} */ ([...list.querySelectorAll(".result")]);
  const stop = rows.find((row) => keyOf(row) === (focusedKey || roving)) || rows[0];
  for (const row of rows) row.tabIndex = row === stop ? 0 : -1;
  if (focusedKey && stop && keyOf(stop) === focusedKey) stop.focus();
  $("search-note").textContent = state.error
    || (state.status === "searching" ? "Searching…"
      : state.status === "done" && !state.messages.length ? "No messages found." : "");
  const more = $("search-more");
  more.hidden = !state.next;
  more.disabled = state.more;
  more.textContent = state.more ? "Loading…" : "More results";
}

/**
 * Open a result's chat at its message: loaded around it when not held,
 * scrolled to and highlighted (render.js), kept in view until the person moves.
 * @param {string} id
 * @param {number} seq
 */
export function openResult(id, seq) {
  S.jump = { id, seq, at: Date.now(), held: true };
  loadAround(id, seq);
  openConversation(id);
  render({ pane: true });
}

/**
 * A key on a result: Up, Down, Home, End move among them; Enter or Space opens
 * one. True when the key was used.
 * @param {KeyboardEvent} event
 */
export function resultKey(event) {
  const row = /** @type {any} */ (event.target).closest(".result");
  if (!row) return false;
  if (event.key === "Enter" || event.key === " ") {
    openResult(row.dataset.conversation, Number(row.dataset.seq));
    return true;
  }
  const rows = [...$("search-list").querySelectorAll(".result")];
  const at = rows.indexOf(row);
  const next = { Home: rows[0], End: rows[rows.length - 1], ArrowDown: rows[Math.min(at + 1, rows.length - 1)],
    ArrowUp: rows[Math.max(at - 1, 0)] }[event.key];
  if (!next) return false;
  roveResult(next, true);
  return true;
}
