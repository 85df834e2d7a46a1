// @ts-check
// Messages that do more (PROTOCOL-v2 §1, §2, §4), the pure part: notices applied
// to the loaded copy, what a chat shows of each entry, who may recall or edit,
// and the @ picker's choices. No DOM, no state: unit-tested with node --test.

/** @typedef {import("./types.js").Message} Message */

/** Kinds that are messages people send; the rest are notices. */
export const COUNTABLE = new Set(["text", "image", "file", "voice"]);

/** @param {Message} message */
export const isNotice = (message) => !COUNTABLE.has(message.kind || "text");

/**
 * A recall or edit notice applied to its target in a loaded history, if the
 * target is there. An older edit never overwrites a newer one (history pages
 * load out of order). Returns the target's seq, or 0 when nothing changed.
 * @param {Map<number, Message>} msgs  by seq
 * @param {Message} notice
 */
export function applyNotice(msgs, notice) {
  const target = notice.target_seq == null ? undefined : msgs.get(notice.target_seq);
  if (!target) return 0;
  if (notice.kind === "recall") {
    if (target.recalled) return 0;
    msgs.set(target.seq, { ...target, recalled: true, body: null, attachment: null,
      recalled_by: notice.sender });
    return target.seq;
  }
  if (notice.kind === "edit" && !target.recalled) {
    if (target.edited_at && target.edited_at >= notice.sent_at) return 0;
    msgs.set(target.seq, { ...target, body: notice.body, edited_at: notice.sent_at });
    return target.seq;
  }
  return 0;
}

/**
 * What a chat draws, oldest first: edit and recall notices are applied to
 * their targets, not drawn (a recalled message becomes its own grey line).
 * @param {Iterable<Message>} messages
 */
export function drawn(messages) {
  return [...messages]
    .filter((m) => m.kind !== "edit" && m.kind !== "recall")
    .sort((a, b) => a.seq - b.seq);
}

/**
 * The grey line in place of a recalled message, as WeChat words it.
 * @param {Message & {recalled_by?: number}} message
 * @param {number} me
 * @param {(id: number) => string} nameOf
 */
export function recallLine(message, me, nameOf) {
  const by = message.recalled_by ?? message.sender;
  return by === me ? "You recalled a message" : `${nameOf(by)} recalled a message`;
}

/**
 * A quote's text: the first 100 characters, or what stands for a file; null when recalled.
 * @param {{kind?: string, body: string | null, recalled?: boolean,
 *   attachment?: {name: string} | null}} message
 */
export function quoteText(message) {
  if (message.recalled || message.body === null) return null;
  if (message.kind === "image") return "[Image]";
  if (message.kind === "voice") return "[Voice]";
  if (message.kind === "file") return message.attachment ? `[File] ${message.attachment.name}` : "[File]";
  return Array.from(message.body).slice(0, 100).join("").replace(/\s+/g, " ");
}

/**
 * Whether `me` may recall `message` now: its sender within the window, a
 * group's owner or admin any time; never a notice or what is already recalled.
 * @param {Message} message
 * @param {number} me
 * @param {boolean} runsGroup      `me` runs the group (group-rules.messageRights)
 * @param {number} now              ms since the epoch
 * @param {number} recallSeconds
 */
export function canRecall(message, me, runsGroup, now, recallSeconds) {
  if (isNotice(message) || message.recalled) return false;
  if (runsGroup) return true;
  return message.sender === me && now - Date.parse(message.sent_at) <= recallSeconds * 1000;
}

/**
 * Whether `me` may edit `message` now: its own text message within the window.
 * @param {Message} message
 * @param {number} me
 * @param {number} now
 * @param {number} editSeconds   0: edits are off
 */
export function canEdit(message, me, now, editSeconds) {
  return (message.kind || "text") === "text" && !message.recalled && message.sender === me
    && editSeconds > 0 && now - Date.parse(message.sent_at) <= editSeconds * 1000;
}

/**
 * @param {Message} message
 * @param {number} me
 */
export const mentionsMe = (message, me) =>
  message.sender !== me && (Boolean(message.mention_all) || (message.mentions || []).includes(me));

/**
 * The "@" word being typed at `caret`, if any: its start and what follows the "@".
 * @param {string} text
 * @param {number} caret
 * @returns {{start: number, query: string} | null}
 */
export function mentionQuery(text, caret) {
  const before = text.slice(0, caret);
  const match = /(^|\s)@([^\s@]*)$/.exec(before);
  if (!match) return null;
  return { start: before.length - match[2].length - 1, query: match[2] };
}

/**
 * The @ picker's choices: "All" first for who may use it, then members (not
 * `me`) whose name starts a word with the query, any case.
 * @param {number[]} memberIds
 * @param {string} query
 * @param {(id: number) => string} nameOf
 * @param {number} me
 * @param {boolean} canAll
 * @returns {{id: number, name: string}[]}   id 0 is @all
 */
export function mentionChoices(memberIds, query, nameOf, me, canAll) {
  const q = query.toLowerCase();
  const fits = (/** @type {string} */ name) =>
    !q || name.toLowerCase().split(/\s+/).some((word) => word.startsWith(q))
    || name.toLowerCase().startsWith(q);
  const found = [];
  if (canAll && fits("All")) found.push({ id: 0, name: "All" });
  for (const id of memberIds) {
    if (id === me) continue;
    const name = nameOf(id);
    if (fits(name)) found.push({ id, name });
  }
  return found.slice(0, 8);
}

/**
 * The mentions a text still carries: the picked names whose "@Name" is in it.
 * @param {string} text
 * @param {Map<number, string>} picked   id (0: all) -> name
 * @returns {{mentions: number[], mention_all: boolean}}
 */
export function mentionsIn(text, picked) {
  const mentions = [];
  let all = false;
  for (const [id, name] of picked) {
    if (!text.includes(`@${name}`)) continue;
    if (id === 0) all = true;
    else mentions.push(id);
  }
  return { mentions: mentions.slice(0, 50), mention_all: all };
}
