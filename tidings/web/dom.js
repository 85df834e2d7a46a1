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

/**
 * A small line icon (24 x 24 view box, stroked like the page's other icons),
 * built as SVG nodes: no HTML is ever parsed.
 * @param {string} path  the path's d attribute
 */
export function icon(path) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS(ns, "path");
  line.setAttribute("d", path);
  svg.appendChild(line);
  return svg;
}

/** @param {string} text  a short message that goes away by itself */
export function notice(text) {
  const box = el("div", "toast", text);
  box.setAttribute("role", "status");
  document.body.appendChild(box);
  setTimeout(() => box.remove(), 4000);
}
