// @ts-check
// The WebSocket of the protocol: authenticate, keep it alive, reconnect with backoff.

import { authFrame, parseServerFrame, pingFrame } from "./frames.js";

/**
 * Milliseconds before reconnect attempt `attempt` (0-based): doubling from 0.5 s
 * to 15 s, each with ±25 % jitter so a restarted server is not hit all at once.
 * @param {number} attempt
 * @param {() => number} [random]
 */
export function backoffDelay(attempt, random = Math.random) {
  const base = Math.min(15000, 500 * 2 ** attempt);
  return Math.round(base * (0.75 + random() * 0.5));
}

/**
 * What the heartbeat does now: "ping" when nothing arrived for `idleMs` and no
 * answer is awaited; "dead" when a frame the server answers (a ping, or a send
 * and its ack) went unanswered (nothing at all arrived) for `answerMs`; else
 * "wait". Any frame from the server proves the line alive.
 * @param {number} now
 * @param {number} lastFrameAt  when the last frame arrived
 * @param {number} askedAt      when the unanswered ping or send went out (0: none)
 * @param {{idleMs: number, answerMs: number}} timing
 * @returns {"ping" | "dead" | "wait"}
 */
export function heartbeat(now, lastFrameAt, askedAt, timing) {
  if (askedAt && lastFrameAt < askedAt) {
    return now - askedAt >= timing.answerMs ? "dead" : "wait";
  }
  return now - lastFrameAt >= timing.idleMs ? "ping" : "wait";
}

/** @typedef {"connecting" | "reconnecting" | "online" | "offline"} SocketState */

/**
 * @typedef {object} LiveSocketOptions
 * @property {string} url                                   ws:// or wss:// .../ws
 * @property {() => string | null} token                    null: stay closed
 * @property {(frame: import("./types.js").ServerFrame) => void} onFrame  every frame, auth_ok included
 * @property {(state: SocketState, seconds?: number) => void} [onState]
 * @property {(code: number) => Promise<boolean> | boolean} [onClose]  false: do not reconnect
 * @property {number} [idleMs]    a ping after this long without a frame (default 5 s)
 * @property {number} [answerMs]  given up when a ping is not answered in this long (default 4 s)
 * @property {number} [openMs]    given up when not authenticated this long after opening (default 10 s)
 */

/** One live connection that comes back by itself after every drop. */
export class LiveSocket {
  /** @param {LiveSocketOptions} options */
  constructor(options) {
    this.options = options;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.authed = false;
    this.attempt = 0;
    this.lastFrameAt = 0;
    this.askedAt = 0;
    this.pings = 0;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.openTimer = undefined;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.countdownTimer = undefined;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.pingTimer = undefined;
  }

  /** Open the socket (if signed in and not open already). */
  connect() {
    clearTimeout(this.retryTimer);
    clearInterval(this.countdownTimer);
    const token = this.options.token();
    if (!token || (this.ws && this.ws.readyState <= WebSocket.OPEN)) return;
    this.options.onState?.(this.attempt ? "reconnecting" : "connecting");
    const ws = new WebSocket(this.options.url);
    this.ws = ws;
    this.authed = false;
    this.askedAt = 0;
    clearTimeout(this.openTimer);
    this.openTimer = setTimeout(() => {
      if (this.ws === ws && !this.authed) this.abandon(4000);
    }, this.options.openMs ?? 10000);
    ws.onopen = () => {
      this.lastFrameAt = Date.now();
      ws.send(JSON.stringify(authFrame(token)));
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      this.lastFrameAt = Date.now();
      const frame = parseServerFrame(String(event.data));
      if (!frame) return;
      if (frame.type === "auth_ok") {
        clearTimeout(this.openTimer);
        this.authed = true;
        this.attempt = 0;
        this.options.onState?.("online");
        this.startPing();
      }
      this.options.onFrame(frame);
    };
    ws.onerror = () => {}; // a close event follows
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.authed = false;
      this.stopPing();
      clearTimeout(this.openTimer);
      this.closed(event.code);
    };
  }

  /**
   * Give the connection up now, without waiting for a close handshake that a
   * dead line never completes: the state says so at once, and a reconnect follows.
   * @param {number} code
   */
  abandon(code) {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    this.authed = false;
    this.stopPing();
    clearTimeout(this.openTimer);
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close(4000, "no answer");
    } catch {
      // already closing
    }
    this.closed(code);
  }

  /** Check the line now (idle, or on waking up): a ping, unless an answer is awaited. */
  probe() {
    if (!this.ws || !this.authed || this.awaitingAnswer()) return;
    this.askedAt = Date.now();
    this.send(pingFrame(`h:${++this.pings}`));
  }

  /**
   * A frame the server answers (a send: its ack) went out: that answer checks
   * the line as a ping would, so no ping is added to the send.
   */
  answerExpected() {
    if (!this.awaitingAnswer()) this.askedAt = Date.now();
  }

  awaitingAnswer() {
    return this.askedAt > 0 && this.lastFrameAt < this.askedAt;
  }

  /**
   * Send a frame if the socket is open and authenticated; false if it is not.
   * @param {import("./types.js").ClientFrame} frame
   */
  send(frame) {
    if (!this.ws || !this.authed || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** The network came back or the tab woke up: skip the rest of the wait, or check the line. */
  reconnectNow() {
    if (this.options.token() && !this.ws) {
      this.attempt = Math.min(this.attempt, 1);
      this.connect();
    } else {
      this.probe();
    }
  }

  /** Close for good (signed out). */
  stop() {
    const ws = this.ws;
    this.ws = null;
    this.authed = false;
    if (ws) ws.close(1000, "signed out");
    clearTimeout(this.retryTimer);
    clearTimeout(this.openTimer);
    clearInterval(this.countdownTimer);
    this.stopPing();
    this.attempt = 0;
  }

  /** @param {number} code */
  async closed(code) {
    if (!this.options.token()) return;
    const again = this.options.onClose ? await this.options.onClose(code) : true;
    if (again && this.options.token()) this.scheduleReconnect();
  }

  scheduleReconnect() {
    clearTimeout(this.retryTimer);
    clearInterval(this.countdownTimer);
    const delay = backoffDelay(this.attempt);
    this.attempt += 1;
    const at = Date.now() + delay;
    const tick = () => {
      this.options.onState?.("offline", Math.max(0, Math.ceil((at - Date.now()) / 1000)));
    };
    tick();
    this.countdownTimer = setInterval(tick, 1000);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** The heartbeat: each second, a ping when idle, and the line given up when one goes unanswered. */
  startPing() {
    this.stopPing();
    const timing = { idleMs: this.options.idleMs ?? 5000, answerMs: this.options.answerMs ?? 4000 };
    this.pingTimer = setInterval(() => {
      const now = Date.now();
      const next = heartbeat(now, this.lastFrameAt, this.askedAt, timing);
      if (next === "dead") this.abandon(4000);
      else if (next === "ping") this.probe();
    }, 1000);
  }

  stopPing() {
    clearInterval(this.pingTimer);
  }
}
