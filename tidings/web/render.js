// @ts-check
// Renders batched to the end of the current task (not to an animation frame:
// background tabs must still update their title and badges).

import { $ } from "./dom.js";
import { S } from "./state.js";
import { renderPane } from "./view-chat.js";
import { renderList } from "./view-list.js";
import { renderMembers } from "./view-members.js";

/**
 * @typedef {object} Dirty
 * @property {boolean} [list]
 * @property {boolean} [pane]
 * @property {boolean} [members]
 * @property {"bottom" | null} [scroll]
 * @property {string | null} [focus]   an element id
 */

/** @type {Required<Dirty>} */
const dirty = { list: false, pane: false, members: false, scroll: null, focus: null };
let flushQueued = false;

/** @param {Dirty} what */
export function render(what) {
  if (what.list) dirty.list = true;
  if (what.pane) dirty.pane = true;
  if (what.members) dirty.members = true;
  if (what.scroll) dirty.scroll = what.scroll;
  if (what.focus) dirty.focus = what.focus;
  if (flushQueued) return;
  flushQueued = true;
  queueMicrotask(() => {
    flushQueued = false;
    if (!S.me) return;
    if (dirty.list) renderList();
    if (dirty.pane) {
      const box = $("messages");
      const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
      renderPane();
      if (dirty.scroll === "bottom" || atBottom) box.scrollTop = box.scrollHeight;
    }
    if (dirty.members && S.membersOpen) renderMembers();
    if (dirty.focus) $(dirty.focus).focus();
    dirty.list = dirty.pane = dirty.members = false;
    dirty.scroll = dirty.focus = null;
  });
}
