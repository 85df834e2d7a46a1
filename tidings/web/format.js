// @ts-check
// Pure formatting: times, names, ids. No DOM, no state: unit-tested with node --test.

const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/** @param {number} n */
const pad = (n) => String(n).padStart(2, "0");
/** @param {Date} d */
export const hhmm = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
/** @param {Date} d */
export const isoDate = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

/**
 * Whole local days between `d` and `now` (0 today, 1 yesterday).
 * @param {Date} d
 * @param {Date} [now]
 */
export function daysAgo(d, now = new Date()) {
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const day = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  return Math.round((today.getTime() - day.getTime()) / 86400000);
}

/**
 * The chat list's time: HH:MM today, "Yesterday", a weekday within a week, else the date.
 * @param {string | null | undefined} iso
 * @param {Date} [now]
 */
export function listTime(iso, now = new Date()) {
  if (!iso) return "";
  const d = new Date(iso);
  const ago = daysAgo(d, now);
  if (ago <= 0) return hhmm(d);
  if (ago === 1) return "Yesterday";
  if (ago < 7) return WEEKDAYS[d.getDay()];
  return isoDate(d);
}

/**
 * A time line in a conversation: the same, with the time of day after the day.
 * @param {string} iso
 * @param {Date} [now]
 */
export function lineTime(iso, now = new Date()) {
  const d = new Date(iso);
  const ago = daysAgo(d, now);
  if (ago <= 0) return hhmm(d);
  if (ago === 1) return `Yesterday ${hhmm(d)}`;
  if (ago < 7) return `${WEEKDAYS[d.getDay()]} ${hhmm(d)}`;
  return `${isoDate(d)} ${hhmm(d)}`;
}

/**
 * When something ends, from now on: HH:MM today, "tomorrow HH:MM", a weekday
 * within a week, else the date (a mute's end).
 * @param {Date} d
 * @param {Date} [now]
 */
export function untilTime(d, now = new Date()) {
  const ahead = -daysAgo(d, now);
  if (ahead <= 0) return hhmm(d);
  if (ahead === 1) return `tomorrow ${hhmm(d)}`;
  if (ahead < 7) return `${WEEKDAYS[d.getDay()]} ${hhmm(d)}`;
  return `${isoDate(d)} ${hhmm(d)}`;
}

/**
 * A stable small number for a string (FNV-1a), e.g. an avatar's colour.
 * @param {string} text
 */
export function hash(text) {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

/**
 * One or two letters for an avatar.
 * @param {string | null | undefined} name
 */
export function initials(name) {
  const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
  if (words.length >= 2) {
    return (Array.from(words[0])[0] + Array.from(words[1])[0]).toUpperCase();
  }
  return (Array.from(words[0] || "?")[0] || "?").toUpperCase();
}

/**
 * The id of the private conversation of two users: the smaller id first.
 * @param {number} a
 * @param {number} b
 */
export function privateId(a, b) {
  return a < b ? `p:${a}-${b}` : `p:${b}-${a}`;
}

/** 32 hex digits: a client_msg_id (crypto.randomUUID needs a secure context; this does not). */
export function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * A chat-list row's second line: the last message, in a group with its sender.
 * @param {import("./types.js").Conversation} entry
 * @param {number} me
 * @param {(id: number) => string} nameOf
 */
export function preview(entry, me, nameOf) {
  const last = entry.last_message;
  if (!last) {
    if (entry.type !== "group") return "Say hello";
    // A member added later sees only what comes after joining.
    return entry.last_seq > 0 ? "You joined: new messages show here" : "No messages yet";
  }
  // A notice (a recall, a group's system line) reads as its own text.
  if (last.kind && last.kind !== "text" && !["image", "file", "voice"].includes(last.kind)) {
    if (last.kind === "recall") {
      return last.sender === me ? "You recalled a message" : `${nameOf(last.sender)} recalled a message`;
    }
    return (last.body || "").replace(/\s+/g, " ");
  }
  if (last.recalled || last.body === null) return "[Recalled]";
  const text = attachmentLabel(last, last.body.replace(/\s+/g, " "));
  if (entry.type === "group") {
    const who = last.sender === me ? "You" : nameOf(last.sender);
    return `${who}: ${text}`;
  }
  return text;
}

/**
 * What a message with a file reads as in one line: "[Image]", "[File] name",
 * "[Voice]", then its caption if any (PROTOCOL-v2 §1's quoted previews); a
 * text message is its text.
 * @param {{kind?: string, attachment?: import("./types.js").Attachment | null}} message
 * @param {string} caption
 */
export function attachmentLabel(message, caption) {
  const text = caption.trim();
  let label;
  if (message.kind === "image") label = "[Image]";
  else if (message.kind === "voice") label = "[Voice]";
  else if (message.kind === "file") {
    label = message.attachment && message.attachment.name ? `[File] ${message.attachment.name}` : "[File]";
  } else return caption;
  return text ? `${label} ${text}` : label;
}

/**
 * A file's size for people: "512 B", "1.5 KB", "12 KB", "3.4 MB" (1 KB = 1024 B).
 * @param {number | null | undefined} bytes
 */
export function fileSize(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = value < 10 ? Math.round(value * 10) / 10 : Math.round(value);
  return `${shown} ${units[unit]}`;
}

/**
 * A voice note's length: "0:07", "1:05", "1:02:03"; "" when not known.
 * @param {number | null | undefined} ms
 */
export function durationText(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms) || ms < 0) return "";
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
}

/**
 * The box an image is shown in, before it loads: its own size scaled down
 * (never up) to fit `max` x `max`, the ratio kept, whole pixels, at least 1.
 * Without a known size: a square of `fallback`.
 * @param {number | null | undefined} width
 * @param {number | null | undefined} height
 * @param {number} [max]
 * @param {number} [fallback]
 */
export function fitBox(width, height, max = 240, fallback = 160) {
  if (!width || !height || width <= 0 || height <= 0) return { width: fallback, height: fallback };
  const scale = Math.min(1, max / width, max / height);
  return {
    width: Math.max(1, Math.round(width * scale)),
    height: Math.max(1, Math.round(height * scale)),
  };
}

/**
 * Which kind of message a file goes as: image/* an image, audio/* a voice
 * note, anything else a file. (The server reads the type from the bytes; a
 * PNG named .txt is still sent as an image only when the browser says so.)
 * @param {string | null | undefined} type  the browser's File.type
 * @returns {"image" | "voice" | "file"}
 */
export function fileKindFor(type) {
  const t = (type || "").toLowerCase();
  if (/^image\/(png|jpeg|gif|webp)$/.test(t)) return "image";
  if (t.startsWith("audio/")) return "voice";
  return "file";
}

/**
 * An upload's failure as a quiet line.
 * @param {number} status  0 when the server could not be reached
 * @param {string} [code]
 * @param {string} [message]
 */
export function uploadProblem(status, code, message) {
  if (status === 0) return "The upload did not go through: the server cannot be reached.";
  if (status === 413 || code === "too_large") {
    return message ? `The file is too large: ${message}.` : "The file is too large to send.";
  }
  if (status === 429) return "Too many uploads just now. Wait a moment and retry.";
  if (status === 422) return `The file cannot be sent${message ? `: ${message}` : ""}.`;
  return `The upload failed${message ? `: ${message}` : ""}.`;
}

/**
 * A count with its noun: "1 member", "2 members", "0 members".
 * @param {number} n
 * @param {string} one
 * @param {string} [many]  default: one + "s"
 */
export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many ?? `${one}s`}`;
}

/**
 * Who is typing, for a chat's header: "Alice is typing…", "Alice and Bob are
 * typing…", "3 people are typing…"; "" when nobody is.
 * @param {string[]} names
 */
export function typingText(names) {
  if (!names.length) return "";
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

/**
 * The line under one's own group message (PROTOCOL-v2 §6): "2 read · 3 unread",
 * "All read", or "Unread" while nobody has.
 * @param {{read: number, unread: number}} readBy
 */
export function readByText(readBy) {
  if (!readBy.unread) return readBy.read ? "All read" : "";
  if (!readBy.read) return "Unread";
  return `${readBy.read} read · ${readBy.unread} unread`;
}

/** How long a typing event shows, without a newer one (the sender repeats every 2 s). */
export const TYPING_SHOWN_MS = 5000;

/** The server's longest body (TIDINGS_MAX_BODY_CHARS; no endpoint says it, so its default). */
export const MAX_BODY_CHARS = 4000;

/**
 * A body's length as the server counts it: code points, not UTF-16 units.
 * @param {string} text
 */
export function bodyLength(text) {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/**
 * The composer's state for its text: the count to show (null while far from
 * the limit, from 90 % of it on) and whether the text may be sent. Nothing
 * is ever cut: a text over the limit stays in the box and is not sent.
 * @param {string} text
 * @param {number} [max]
 * @returns {{length: number, count: string | null, over: boolean, sendable: boolean}}
 */
export function composerCheck(text, max = MAX_BODY_CHARS) {
  const length = bodyLength(text);
  const over = length > max;
  return {
    length,
    count: length >= Math.floor(max * 0.9) ? `${length} / ${max}` : null,
    over,
    sendable: !over && text.trim() !== "",
  };
}

/**
 * Folded for matching: lower case, accents off.
 * @param {string} text
 */
const fold = (text) => text.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();

/**
 * Whether a chat matches the list's filter: every word of the query is in
 * one of its texts (title, username), ignoring case and accents.
 * @param {string[]} texts
 * @param {string} query
 */
export function filterMatches(texts, query) {
  const words = fold(query).split(/\s+/).filter(Boolean);
  if (!words.length) return true;
  const haystack = texts.map(fold).join("\n");
  return words.every((word) => haystack.includes(word));
}

/**
 * A message's text cut into plain parts and links: only http and https
 * addresses become links (a trailing full stop, comma, bracket or quote stays
 * text). The caller builds text nodes and <a> elements from these, never HTML.
 * @param {string} text
 * @returns {({text: string, href?: undefined} | {text: string, href: string})[]}
 */
export function linkParts(text) {
  /** @type {({text: string, href?: undefined} | {text: string, href: string})[]} */
  const parts = [];
  const pattern = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    let url = match[0];
    const start = match.index ?? 0;
    while (/[.,;:!?)\]}]$/.test(url)) {
      if (url.endsWith(")") && (url.match(/\(/g) || []).length >= (url.match(/\)/g) || []).length) {
        break; // a balanced bracket is part of the address (Wikipedia's, say)
      }
      url = url.slice(0, -1);
    }
    let href = null;
    try {
      const parsed = new URL(url);
      if ((parsed.protocol === "http:" || parsed.protocol === "https:") && parsed.hostname) {
        href = parsed.href;
      }
    } catch {
      href = null;
    }
    if (!href) continue;
    if (start > at) parts.push({ text: text.slice(at, start) });
    parts.push({ text: url, href });
    at = start + url.length;
  }
  if (at < text.length || !parts.length) parts.push({ text: text.slice(at) });
  return parts;
}

/**
 * A field error of the API (`"username: 3 to 32 characters of …"`) as a sentence.
 * @param {string} message
 */
export function fieldMessage(message) {
  const field = /^(\w+):/.exec(message);
  switch (field && field[1]) {
    case "username":
      return "Choose a username of 3 to 32 characters, using only letters, digits, dots, dashes and underscores.";
    case "password":
      return "Choose a password of 8 to 256 characters.";
    case "display_name":
      return "A display name is 1 to 64 characters.";
    default:
      return message;
  }
}

/**
 * @typedef {object} NoticeSettings  what this device does for a message while the tab is hidden
 * @property {boolean} sound   a short tone (off unless turned on)
 * @property {boolean} notify  a system notification (off unless turned on and allowed)
 */

/** @type {NoticeSettings} */
export const DEFAULT_NOTICES = { sound: false, notify: false };

/**
 * Whether a message gets a sound and a notification: only others' messages,
 * only while the tab is hidden, each only when turned on.
 * @param {NoticeSettings} settings
 * @param {{hidden: boolean, own: boolean, removed?: boolean}} what
 */
export function noticeFor(settings, what) {
  const due = what.hidden && !what.own && !what.removed;
  return { sound: due && settings.sound, notify: due && settings.notify };
}

/**
 * A notification's title and body for a message (the body cut to 140 characters:
 * only the notification, never a message, is shortened).
 * @param {string} title   the conversation's
 * @param {"private" | "group"} type
 * @param {string} sender
 * @param {string} body
 */
export function noticeText(title, type, sender, body) {
  const text = body.replace(/\s+/g, " ").trim();
  const short = [...text].length > 140 ? `${[...text].slice(0, 139).join("")}…` : text;
  return { title, body: type === "group" ? `${sender}: ${short}` : short };
}
