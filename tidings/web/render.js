// @ts-check
// Renders batched to the end of the current task (not to an animation frame:
// background tabs must still update their title and badges).

import { $ } from "./dom.js";
import { S } from "./state.js";
import { renderPane, updateLatest } from "./view-chat.js";
import { renderList } from "./view-list.js";
import { renderMembers } from "./view-members.js";
import { renderSearch } from "./view-search.js";

/**
 * @typedef {object} Dirty
 * @property {boolean} [list]
 * @property {boolean} [pane]
 * @property {boolean} [members]
 * @property {"bottom" | "unread" | null} [scroll]  "unread": to the "new messages" line
 * @property {boolean} [latest]   the jump-to-latest button's count
 * @property {string | null} [focus]   an element id
 */

/** @type {Required<Dirty>} */
const dirty = { list: false, pane: false, members: false, scroll: null, focus: null, latest: false };
let flushQueued = false;

/** How long a message opened from search stays highlighted (style.css fades it). */
export const FOUND_MS = 2400;

/**
 * The message the open chat was opened at, highlighted for a moment and, while
 * held, scrolled into view; true when it was scrolled to.
 * @param {HTMLElement} box
 */
function showJump(box) {
  const jump = S.jump && S.jump.id === S.openId ? S.jump : null;
  const row = jump ? box.querySelector(`[data-seq="${jump.seq}"]`) : null;
  if (!jump || !(row instanceof HTMLElement)) return false;
  const elapsed = Date.now() - jump.at;
  if (elapsed < FOUND_MS) {
    // Each redraw makes a new row: its fade goes on from where the last one was.
    row.classList.add("found");
    row.style.setProperty("--found-delay", `${-elapsed}ms`);
    setTimeout(() => row.classList.remove("found"), FOUND_MS - elapsed);
  }
  if (!jump.held) return false;
  row.scrollIntoView({ block: "center" });
  return true;
}

/** @param {Dirty} what */
export function render(what) {
  if (what.list) dirty.list = true;
  if (what.pane) dirty.pane = true;
  if (what.members) dirty.members = true;
  if (what.latest) dirty.latest = true;
  if (what.scroll) dirty.scroll = what.scroll;
  if (what.focus) dirty.focus = what.focus;
  if (flushQueued) return;
  flushQueued = true;
  queueMicrotask(() => {
    flushQueued = false;
    if (!S.me) return;
    if (dirty.list) {
      renderList();
      renderSearch(); // titles and names in the results follow the list's
    }
    if (dirty.pane) {
      const box = $("messages");
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
      // A message focused by keyboard keeps the focus through the redraw.
      const active = /** @type {any} */ (document.activeElement);
      const held = active && box.contains(active) && active.closest
        ? active.closest(".msg[data-seq]") : null;
      renderPane();
      const again = held ? box.querySelector(`.msg[data-seq="${held.dataset.seq}"]`) : null;
      if (again instanceof HTMLElement) {
        again.tabIndex = -1;
        again.focus({ preventScroll: true });
      }
      const line = dirty.scroll === "unread" ? $("new-line") : null;
      if (showJump(box)) {
        // A search result opened: it stays in view, whatever came meanwhile.
      } else if (line) {
        box.scrollTop += line.getBoundingClientRect().top - box.getBoundingClientRect().top - 8;
      } else if (dirty.scroll || atBottom) {
        box.scrollTop = box.scrollHeight;
      }
    }
    if (dirty.pane || dirty.latest) updateLatest();
    if (dirty.members && S.membersOpen) renderMembers();
    if (dirty.focus) $(dirty.focus).focus();
    dirty.list = dirty.pane = dirty.members = dirty.latest = false;
    dirty.scroll = dirty.focus = null;
  });
}
