// Unit tests of tidings/web/search.js: node --test tests/web/
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  SearchRunner, groupByConversation, highlightParts, mergePage, searchErrorText, searchQuery,
  snippetParts,
} from "../../tidings/web/search.js";

/** The parts as a string, matches in [brackets]. */
const shown = (parts) => parts.map((p) => (p.match ? `[${p.text}]` : p.text)).join("");

test("the query is trimmed and 1 to 100 code points, as the server takes it", () => {
  assert.equal(searchQuery("  世界 "), "世界");
  assert.equal(searchQuery("   "), null);
  assert.equal(searchQuery("😀".repeat(100)), "😀".repeat(100));
  assert.equal(searchQuery("a".repeat(101)), null);
});

test("a CJK query is marked exactly, every time it occurs", () => {
  assert.equal(shown(highlightParts("你好世界，世界你好", "世界")), "你好[世界]，[世界]你好");
});

test("a Latin query is marked whatever its case, in the text's own case", () => {
  assert.equal(shown(highlightParts("Hello HELLO hello", "hELLo")), "[Hello] [HELLO] [hello]");
  assert.equal(shown(highlightParts("Привет МИР", "мир")), "Привет [МИР]");
});

test("characters outside the BMP are kept whole around a match", () => {
  assert.equal(shown(highlightParts("😀a😀A😀", "a")), "😀[a]😀[A]😀");
  assert.equal(shown(highlightParts("x𠀋y", "𠀋")), "x[𠀋]y");
});

test("a character whose lower case is longer does not shift the marks after it", () => {
  // "İ".toLowerCase() is two code points: indexes are mapped back, not reused.
  assert.equal(shown(highlightParts("İstanbul Istanbul", "stan")), "İ[stan]bul I[stan]bul");
  assert.equal(shown(highlightParts("xİy", "i̇")), "x[İ]y");
  assert.equal(shown(highlightParts("İİ", "İ")), "[İ][İ]");
});

test("no match, or an empty query, leaves the text unmarked", () => {
  assert.equal(shown(highlightParts("hello", "bye")), "hello");
  assert.equal(shown(highlightParts("hello", "")), "hello");
  assert.deepEqual(highlightParts("", "a"), []);
});

test("the snippet keeps a little before the first match and cuts with ellipses", () => {
  const text = `${"a".repeat(40)} needle ${"b".repeat(40)}`;
  const parts = snippetParts(text, "NEEDLE", 30, 8);
  assert.equal(shown(parts), `…${"a".repeat(7)} [needle] ${"b".repeat(15)}…`);
  assert.equal([...parts.map((p) => p.text).join("")].length, 32); // 30 and two ellipses
});

test("the snippet is the whole text when it is short, and on one line", () => {
  assert.equal(shown(snippetParts("你好\n世界", "世界")), "你好 [世界]");
});

test("a match near the end shows more before it rather than less text", () => {
  const text = `${"a".repeat(50)}end`;
  assert.equal(shown(snippetParts(text, "end", 20, 5)), `…${"a".repeat(17)}[end]`);
});

test("the snippet cuts between code points, never inside a surrogate pair", () => {
  const text = `${"😀".repeat(30)}x${"😀".repeat(30)}`;
  const parts = snippetParts(text, "x", 11, 5);
  assert.equal(shown(parts), `…${"😀".repeat(5)}[x]${"😀".repeat(5)}…`);
  for (const part of parts) assert.ok(part.text.isWellFormed());
});

test("a text the query is not found in shows from its start", () => {
  assert.equal(shown(snippetParts("abcdefghij", "zz", 4, 2)), "abcd…");
});

const m = (conversation, seq) => ({ id: `${conversation}#${seq}`, conversation, seq });

test("results are grouped by conversation in the order of their newest match", () => {
  const groups = groupByConversation([m("g:1", 9), m("p:1-2", 30), m("g:1", 4), m("p:1-2", 2)]);
  assert.deepEqual(groups.map((g) => g.conversation), ["g:1", "p:1-2"]);
  assert.deepEqual(groups[0].messages.map((x) => x.seq), [9, 4]);
  assert.deepEqual(groups[1].messages.map((x) => x.seq), [30, 2]);
});

test("a further page adds only the results not held yet, after them", () => {
  const merged = mergePage([m("g:1", 9), m("g:1", 8)], [m("g:1", 8), m("p:1-2", 3)]);
  assert.deepEqual(merged.map((x) => x.id), ["g:1#9", "g:1#8", "p:1-2#3"]);
});

test("a failed search reads as a quiet sentence", () => {
  assert.match(searchErrorText({ status: 429, code: "rate_limited" }), /too often/);
  assert.match(searchErrorText({ status: 0, code: "network" }), /network/);
  assert.match(searchErrorText({}), /failed/);
});

/** A runner with hand-run timers and hand-answered requests. */
function harness() {
  const timers = [];
  const calls = [];
  const states = [];
  const runner = new SearchRunner({
    fetchPage: (q, before) => new Promise((resolve, reject) => calls.push({ q, before, resolve, reject })),
    onChange: (state) => states.push(state),
    setTimer: (fn) => timers.push(fn) && timers.length,
    clearTimer: (timer) => { timers[timer - 1] = null; },
  });
  const fire = () => {
    const due = timers.splice(0).filter(Boolean);
    for (const fn of due) fn();
  };
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  return { runner, calls, states, fire, settle };
}

test("the runner waits for the pause and asks once for the last text typed", async () => {
  const { runner, calls, fire } = harness();
  runner.type("w");
  runner.type("wo");
  runner.type("wor");
  assert.equal(runner.state.status, "searching");
  fire();
  assert.deepEqual(calls.map((c) => c.q), ["wor"]);
});

test("the runner keeps one request in flight and drops a stale answer", async () => {
  const { runner, calls, fire, settle } = harness();
  runner.type("he");
  fire();
  runner.type("hello");
  fire();
  assert.equal(calls.length, 1, "the second waits for the first");
  calls[0].resolve({ messages: [m("g:1", 1)], next_before: null });
  await settle();
  assert.equal(runner.state.status, "searching", "the answer to 'he' is dropped");
  assert.deepEqual(calls.map((c) => c.q), ["he", "hello"]);
  calls[1].resolve({ messages: [m("g:1", 2)], next_before: "c1" });
  await settle();
  assert.equal(runner.state.status, "done");
  assert.deepEqual(runner.state.messages.map((x) => x.seq), [2]);
  assert.equal(runner.state.next, "c1");
});

test("more results merge in; clearing the box forgets everything", async () => {
  const { runner, calls, fire, settle } = harness();
  runner.type("x");
  fire();
  calls[0].resolve({ messages: [m("g:1", 5)], next_before: "c1" });
  await settle();
  runner.more();
  assert.equal(runner.state.more, true);
  assert.equal(calls[1].before, "c1");
  calls[1].resolve({ messages: [m("g:1", 5), m("g:1", 3)], next_before: null });
  await settle();
  assert.deepEqual(runner.state.messages.map((x) => x.seq), [5, 3]);
  assert.equal(runner.state.next, null);
  runner.type("");
  assert.equal(runner.state.status, "idle");
  assert.deepEqual(runner.state.messages, []);
});

test("too long a text asks nothing and says why at once", () => {
  const { runner, calls, fire } = harness();
  runner.type("a".repeat(101));
  fire();
  assert.equal(calls.length, 0);
  assert.equal(runner.state.status, "error");
  assert.match(runner.state.error, /at most 100 characters/);
  runner.type("");
  assert.equal(runner.state.status, "idle");
});

test("a failed search shows the error, and typing the same again retries", async () => {
  const { runner, calls, fire, settle } = harness();
  runner.type("x");
  fire();
  calls[0].reject({ status: 429, code: "rate_limited" });
  await settle();
  assert.equal(runner.state.status, "error");
  assert.match(runner.state.error, /too often/);
  runner.type("x ");
  fire();
  assert.equal(calls.length, 2);
});
