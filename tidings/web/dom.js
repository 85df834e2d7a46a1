// @ts-check
// Small DOM helpers shared by the views.

import { hash, initials } from "./format.js";

const COLOURS = 8;

/**
 * The element with this id (the page has every id the views use).
 * @param {string} id
 * @returns {any}
 */
export const $ = (id) => document.getElementById(id);

/**
 * @param {string} tag
 * @param {string | null} [cls]
 * @param {string | null} [text]
 * @returns {any}
 */
export function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

/**
 * @param {string} key    what the colour follows ("u{id}" or "g{id}")
 * @param {string} name
 * @param {string} [extra]
 */
export function avatar(key, name, extra) {
  const node = el("div", `avatar c${hash(key) % COLOURS}${extra ? " " + extra : ""}`, initials(name));
  node.setAttribute("aria-hidden", "true");
  return node;
}

/** @param {string} text  a short message that goes away by itself */
export function notice(text) {
  const box = el("div", "toast", text);
  box.setAttribute("role", "status");
  document.body.appendChild(box);
  setTimeout(() => box.remove(), 4000);
}
