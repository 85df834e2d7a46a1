// @ts-check
// Message search (PROTOCOL-v2 §7) without the DOM: where a query is in a
// text, the snippet shown around it, the results grouped by conversation, a
// further page merged in, and a runner that debounces the typing and keeps one
// request in flight. Unit-tested with node --test.

/** @typedef {import("./types.js").Message} Message */

/** The server's bounds on `q`, counted in code points once trimmed. */
export const MAX_QUERY_CHARS = 100;
/** How long the typing pauses before the server is asked. */
export const SEARCH_DELAY_MS = 250;
/** How many code points of a message a result row shows around the match. */
export const SNIPPET_CHARS = 60;
/** Of those, at most this many before the match. */
export const SNIPPET_LEAD = 16;

/**
 * The query as the server matches it: trimmed, and null when it asks nothing
 * (empty) or too much (over 100 code points).
 * @param {string} text
 */
export function searchQuery(text) {
  const q = text.trim();
  const length = [...q].length;
  return length >= 1 && length <= MAX_QUERY_CHARS ? q : null;
}

/**
 * A text lower-cased one code point at a time, with, for each UTF-16 unit of
 * the result, the index of the code point it came from. Per code point, not
 * the whole string at once: a case change may lengthen a character ("İ" is
 * "i̇", two), and no context rule (Greek final sigma) may make the query fold
 * differently from the text around it.
 * @param {string[]} points  the text's code points
 */
function folded(points) {
  let text = "";
  /** @type {number[]} */
  const owner = [];
  points.forEach((point, index) => {
    const lower = point.toLowerCase();
    text += lower;
    for (let unit = 0; unit < lower.length; unit++) owner.push(index);
  });
  return { text, owner };
}

/**
 * Every place the query is in the text, case-insensitively in any script, as
 * [start, end) ranges of code points, in order and never overlapping. A match
 * that covers only part of a character's lower case covers the whole character.
 * @param {string[]} points  the text's code points
 * @param {string} query
 * @returns {[number, number][]}
 */
export function matchRanges(points, query) {
  const needle = folded([...query]).text;
  if (!needle) return [];
  const hay = folded(points);
  /** @type {[number, number][]} */
  const ranges = [];
  let from = 0;
  for (;;) {
    const at = hay.text.indexOf(needle, from);
    if (at < 0) break;
    const start = hay.owner[at];
    const end = hay.owner[at + needle.length - 1] + 1;
    const last = ranges[ranges.length - 1];
    if (last && start < last[1]) last[1] = Math.max(last[1], end); // a folded char shared
    else ranges.push([start, end]);
    from = at + needle.length;
  }
  return ranges;
}

/**
 * @typedef {object} Part
 * @property {string} text
 * @property {boolean} match  the view wraps it in <mark>
 */

/**
 * The text cut into plain parts and matches of the query (all of them).
 * @param {string} text
 * @param {string} query
 * @returns {Part[]}
 */
export function highlightParts(text, query) {
  const points = [...text];
  return partsOf(points, matchRanges(points, query), 0, points.length);
}

/**
 * @param {string[]} points
 * @param {[number, number][]} ranges
 * @param {number} from
 * @param {number} to
 * @returns {Part[]}
 */
function partsOf(points, ranges, from, to) {
  /** @type {Part[]} */
  const parts = [];
  let at = from;
  for (const [start, end] of ranges) {
    if (end <= from || start >= to) continue;
    const a = Math.max(start, from);
    const b = Math.min(end, to);
    if (a > at) parts.push({ text: points.slice(at, a).join(""), match: false });
    parts.push({ text: points.slice(a, b).join(""), match: true });
    at = b;
  }
  if (at < to) parts.push({ text: points.slice(at, to).join(""), match: false });
  return parts;
}

/**
 * What a result row shows: at most `max` code points of the text (white space
 * as single spaces, on one line) around its first match, with "…" where it was
 * cut, every match in it marked. A text where the query is not found (the
 * server folds case its own way) shows from its start, unmarked.
 * @param {string} text
 * @param {string} query
 * @param {number} [max]
 * @param {number} [lead]   code points kept before the first match, at most
 * @returns {Part[]}
 */
export function snippetParts(text, query, max = SNIPPET_CHARS, lead = SNIPPET_LEAD) {
  // One whitespace code point for one space: the ranges' indexes stay true.
  const points = [...text].map((point) => (/\s/u.test(point) ? " " : point));
  const ranges = matchRanges(points, query);
  const first = ranges.length ? ranges[0][0] : 0;
  let from = Math.max(0, first - lead);
  const to = Math.min(points.length, from + max);
  from = Math.max(0, Math.min(from, to - max)); // near the end: show more before it
  const parts = partsOf(points, ranges, from, to);
  if (from > 0) parts.unshift({ text: "…", match: false });
  if (to < points.length) parts.push({ text: "…", match: false });
  return parts;
}

/**
 * @typedef {object} ResultGroup
 * @property {string} conversation
 * @property {Message[]} messages   newest first, as the server sent them
 */

/**
 * Results grouped by conversation, the groups in the order of their newest
 * match (the results come newest first, so: of their first result).
 * @param {Message[]} messages
 * @returns {ResultGroup[]}
 */
export function groupByConversation(messages) {
  /** @type {Map<string, ResultGroup>} */
  const groups = new Map();
  for (const message of messages) {
    let group = groups.get(message.conversation);
    if (!group) {
      group = { conversation: message.conversation, messages: [] };
      groups.set(message.conversation, group);
    }
    group.messages.push(message);
  }
  return [...groups.values()];
}

/**
 * A further page after the results held: those already held are not added
 * again (a message sent meanwhile can shift a page's start).
 * @param {Message[]} held
 * @param {Message[]} page
 */
export function mergePage(held, page) {
  const ids = new Set(held.map((message) => message.id));
  return [...held, ...page.filter((message) => !ids.has(message.id))];
}

const TOO_LONG = `Messages are searched for at most ${MAX_QUERY_CHARS} characters.`;

/**
 * The quiet line for a search that failed.
 * @param {{status?: number, code?: string}} error   an ApiError, or anything thrown
 */
export function searchErrorText(error) {
  if (error.code === "rate_limited" || error.status === 429) {
    return "Searching too often. Wait a moment and type again.";
  }
  if (error.code === "network" || error.status === 0) return "Search needs the network. Type again when online.";
  return "Search failed. Try again.";
}

/**
 * @typedef {object} SearchState
 * @property {string} query           what is searched for ("" : nothing)
 * @property {"idle" | "searching" | "done" | "error"} status
 * @property {Message[]} messages     newest first
 * @property {string | null} next     the next page's cursor
 * @property {boolean} more           a further page is on its way
 * @property {string | null} error    the quiet line, when a request failed
 */

/** @returns {SearchState} */
export function idleSearch() {
  return { query: "", status: "idle", messages: [], next: null, more: false, error: null };
}

/**
 * @typedef {(q: string, before: string | null) =>
 *   Promise<{messages: Message[], next_before: string | null}>} FetchPage
 */

/**
 * Runs the searches typed: asks the server once the typing pauses, never has
 * two requests in flight (the latest query waits for the one running), and
 * drops an answer to anything but the latest query (a generation counter).
 * Each change of its state is given to `onChange`.
 */
export class SearchRunner {
  /**
   * @param {object} options
   * @param {FetchPage} options.fetchPage
   * @param {(state: SearchState) => void} options.onChange
   * @param {number} [options.delay]
   * @param {(fn: () => void, ms: number) => any} [options.setTimer]
   * @param {(timer: any) => void} [options.clearTimer]
   */
  constructor({ fetchPage, onChange, delay = SEARCH_DELAY_MS, setTimer, clearTimer }) {
    this.fetchPage = fetchPage;
    this.onChange = onChange;
    this.delay = delay;
    this.setTimer = setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = clearTimer ?? ((timer) => clearTimeout(timer));
    /** @type {SearchState} */
    this.state = idleSearch();
    this.generation = 0;
    this.busy = false;
    /** @type {(() => void) | null} the request waiting for the one in flight */
    this.queued = null;
    /** @type {any} */
    this.timer = null;
  }

  /** @param {Partial<SearchState>} change */
  set(change) {
    this.state = { ...this.state, ...change };
    this.onChange(this.state);
  }

  /**
   * The box's text changed: a new search after the pause, or none.
   * @param {string} text
   */
  type(text) {
    const q = searchQuery(text) ?? "";
    if (q && q === this.state.query && this.state.status !== "error") return; // "abc" to "abc "
    this.generation += 1;
    this.queued = null;
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    if (!q) {
      // Too long a text is said at once: the server would refuse it (422).
      this.set(text.trim() ? { ...idleSearch(), status: "error", error: TOO_LONG } : idleSearch());
      return;
    }
    this.set({ ...idleSearch(), query: q, status: "searching" });
    const generation = this.generation;
    this.timer = this.setTimer(() => {
      this.timer = null;
      this.request(generation, q, null);
    }, this.delay);
  }

  /** The next page of the latest search. */
  more() {
    const { query, next, more, status } = this.state;
    if (!next || more || status !== "done") return;
    this.set({ more: true });
    this.request(this.generation, query, next);
  }

  /**
   * @param {number} generation
   * @param {string} q
   * @param {string | null} before
   */
  async request(generation, q, before) {
    if (this.busy) {
      this.queued = () => this.request(generation, q, before);
      return;
    }
    this.busy = true;
    try {
      const page = await this.fetchPage(q, before);
      if (generation === this.generation) {
        this.set({ status: "done", error: null, more: false, next: page.next_before,
          messages: before ? mergePage(this.state.messages, page.messages) : page.messages });
      }
    } catch (error) {
      if (generation === this.generation) {
        // A failed "more" keeps what was found; a failed first page says so instead.
        this.set({ status: before ? "done" : "error", more: false,
          error: searchErrorText(/** @type {any} */ (error) || {}) });
      }
    } finally {
      this.busy = false;
      const queued = this.queued;
      this.queued = null;
      if (queued) queued();
    }
  }
}
