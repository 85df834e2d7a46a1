// Unit tests of the protocol modules: frames.js, socket.js's backoff, api.js.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ApiError, createApi } from "../../tidings/web/api.js";
import {
  authFrame, parseServerFrame, readFrame, sendFrame, sendOutcome, sendRefId,
} from "../../tidings/web/frames.js";
import { backoffDelay } from "../../tidings/web/socket.js";

test("a send carries its client_msg_id, and its ref finds it again", () => {
  const frame = sendFrame({ cmid: "abc", conversation: "g:1", body: "hi" });
  assert.deepEqual(frame, { type: "send", ref: "m:abc", conversation: "g:1", body: "hi",
    client_msg_id: "abc" });
  assert.equal(sendRefId(frame.ref), "abc");
  assert.equal(sendRefId("r:1"), null);
  assert.equal(sendRefId(7), null);
  assert.deepEqual(authFrame("t"), { type: "auth", token: "t" });
  assert.deepEqual(readFrame("r:2", "p:1-2", 9), { type: "read", ref: "r:2",
    conversation: "p:1-2", seq: 9 });
});

test("only a JSON object with a string type is a server frame", () => {
  assert.deepEqual(parseServerFrame('{"type":"pong"}'), { type: "pong" });
  for (const text of ["", "nul", "[]", '"x"', '{"type":5}', "null"]) {
    assert.equal(parseServerFrame(text), null, text);
  }
});

test("a send is retried after unavailable, rate_limited or internal; else it failed", () => {
  for (const code of ["unavailable", "rate_limited", "internal"]) {
    assert.deepEqual(sendOutcome(code), { retry: true });
  }
  assert.deepEqual(sendOutcome("too_large"), { retry: false, label: "Too long" });
  assert.deepEqual(sendOutcome("not_member"), { retry: false, label: "Not a member" });
  assert.deepEqual(sendOutcome("bad_request", "body: x"), { retry: false, label: "body: x" });
});

test("reconnects back off from 0.5 s to 15 s with ±25 % jitter", () => {
  assert.equal(backoffDelay(0, () => 0.5), 500);
  assert.equal(backoffDelay(3, () => 0.5), 4000);
  assert.equal(backoffDelay(10, () => 0.5), 15000);
  assert.equal(backoffDelay(0, () => 0), 375);
  assert.equal(backoffDelay(10, () => 1), 18750);
});

test("the API sends the token, decodes JSON, and turns errors into ApiError", async () => {
  const calls = [];
  const answers = [
    new Response(JSON.stringify({ id: 1 }), { status: 200 }),
    new Response(null, { status: 204 }),
    new Response(JSON.stringify({ error: { code: "not_member", message: "no" } }), { status: 403 }),
    new Response("", { status: 401 }),
  ];
  const unauthorized = [];
  const api = createApi({
    token: () => "tok",
    onUnauthorized: (path) => unauthorized.push(path),
    fetch: async (url, init) => {
      calls.push([url, init]);
      return answers.shift();
    },
  });
  assert.deepEqual(await api("GET", "/me"), { id: 1 });
  assert.equal(calls[0][0], "/api/v1/me");
  assert.equal(calls[0][1].headers.Authorization, "Bearer tok");
  assert.equal(await api("POST", "/x", { seq: 1 }), null);
  assert.equal(calls[1][1].body, '{"seq":1}');
  await assert.rejects(api("GET", "/groups/1"), (error) =>
    error instanceof ApiError && error.status === 403 && error.code === "not_member");
  await assert.rejects(api("GET", "/me"), (error) => error.code === "http_401");
  assert.deepEqual(unauthorized, ["/me"]);
});

test("a server that cannot be reached is ApiError status 0, code network", async () => {
  const api = createApi({ token: () => null, fetch: async () => { throw new TypeError("down"); } });
  await assert.rejects(api("GET", "/me"), (error) => error.status === 0 && error.code === "network");
});

test("the heartbeat pings when idle and gives up on an unanswered ping", async () => {
  const { heartbeat } = await import("../../tidings/web/socket.js");
  const { pingFrame } = await import("../../tidings/web/frames.js");
  const timing = { idleMs: 5000, answerMs: 4000 };
  assert.equal(heartbeat(10000, 9000, 0, timing), "wait");
  assert.equal(heartbeat(14000, 9000, 0, timing), "ping");
  assert.equal(heartbeat(15000, 9000, 14000, timing), "wait"); // ping out, not yet due
  assert.equal(heartbeat(18000, 9000, 14000, timing), "dead"); // 4 s without a word
  assert.equal(heartbeat(18000, 14500, 14000, timing), "wait"); // answered
  assert.equal(heartbeat(19500, 14500, 14000, timing), "ping"); // idle again
  assert.deepEqual(pingFrame(), { type: "ping" });
  assert.deepEqual(pingFrame("h:1"), { type: "ping", ref: "h:1" });
});
