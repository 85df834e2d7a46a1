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

/** @typedef {"connecting" | "reconnecting" | "online" | "offline"} SocketState */

/**
 * @typedef {object} LiveSocketOptions
 * @property {string} url                                   ws:// or wss:// .../ws
 * @property {() => string | null} token                    null: stay closed
 * @property {(frame: import("./types.js").ServerFrame) => void} onFrame  every frame, auth_ok included
 * @property {(state: SocketState, seconds?: number) => void} [onState]
 * @property {(code: number) => Promise<boolean> | boolean} [onClose]  false: do not reconnect
 * @property {number} [pingMs]   a ping this often while authenticated (default 25 s)
 * @property {number} [deadMs]   closed when nothing arrived for this long (default 70 s)
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
      this.closed(event.code);
    };
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

  /** The network came back or the tab woke up: skip the rest of the wait. */
  reconnectNow() {
    if (this.options.token() && !this.ws) {
      this.attempt = Math.min(this.attempt, 1);
      this.connect();
    }
  }

  /** Close for good (signed out). */
  stop() {
    const ws = this.ws;
    this.ws = null;
    this.authed = false;
    if (ws) ws.close(1000, "signed out");
    clearTimeout(this.retryTimer);
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

  startPing() {
    this.stopPing();
    const dead = this.options.deadMs ?? 70000;
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastFrameAt > dead && this.ws) {
        this.ws.close(4000, "no answer");
        return;
      }
      this.send(pingFrame());
    }, this.options.pingMs ?? 25000);
  }

  stopPing() {
    clearInterval(this.pingTimer);
  }
}
