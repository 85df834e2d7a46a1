// @ts-check
// Web Push (PROTOCOL-v2 §8), the parts with no browser in them, shared by the
// page and the service worker (sw.js) and tested under node: the app's URL of
// a conversation, what a push shows and whether it shows, which window a click
// goes to, and what the profile says about it all.

/**
 * A push's decrypted body (PROTOCOL-v2 §8).
 * @typedef {{conversation: string, seq: number, title: string, body: string,
 *   total_unread: number}} PushPayload
 */

/**
 * What the service worker knows of a window of this origin (a WindowClient).
 * @typedef {{url: string, focused: boolean, visibilityState: string}} AppWindow
 */

/** @typedef {"unsupported" | "denied" | "off" | "on"} PushState */

const CONVERSATION = /^[pg]:[0-9]+(?:-[0-9]+)?$/;
const ROUTE = /^#\/([pg]:[0-9]+(?:-[0-9]+)?)(?:\/([1-9][0-9]{0,15}))?$/;

/** What the service worker posts to a window to open a conversation at a message. */
export const OPEN_MESSAGE = "tidings.open";
/** What it asks a window in front: which conversation it shows (a window's URL
 * cannot say: browsers keep the URL a window was loaded at, not its #/{id}). */
export const SHOWING_MESSAGE = "tidings.showing";

/**
 * The conversation a URL's fragment opens, "#/{id}", and the message to show
 * in it, "#/{id}/{seq}" (a notification's link); null for any other fragment.
 * @param {string} hash
 * @returns {{id: string, seq: number | null} | null}
 */
export function parseRoute(hash) {
  const match = ROUTE.exec(hash);
  return match ? { id: match[1], seq: match[2] ? Number(match[2]) : null } : null;
}

/**
 * @param {string} id
 * @param {number | null} seq
 */
export function routeHash(id, seq) {
  return seq ? `#/${id}/${seq}` : `#/${id}`;
}

/** @param {unknown} value */
const count = (value) => typeof value === "number" && Number.isSafeInteger(value) && value >= 0;

/**
 * A push's body as the server sends it, or null for anything else (the
 * service worker then shows nothing of it).
 * @param {unknown} data  the parsed JSON
 * @returns {PushPayload | null}
 */
export function readPayload(data) {
  const d = /** @type {any} */ (data);
  if (!d || typeof d !== "object" || typeof d.conversation !== "string"
    || !CONVERSATION.test(d.conversation) || !count(d.seq) || d.seq < 1
    || typeof d.title !== "string" || typeof d.body !== "string") return null;
  return {
    conversation: d.conversation, seq: d.seq, title: d.title || "tidings", body: d.body,
    total_unread: count(d.total_unread) ? d.total_unread : 0,
  };
}

/**
 * The notification of a push, given the seq of the one this conversation's
 * tag shows now (null: none). One per conversation (the tag), so a burst is
 * one notification showing the newest; a newer message replacing it alerts
 * again (the server already sends at most one push per conversation every
 * few seconds), and a late push of an older message changes nothing (null).
 * @param {PushPayload} payload
 * @param {number | null} shownSeq
 * @returns {{title: string, options: NotificationOptions & {renotify?: boolean}} | null}
 */
export function notificationFor(payload, shownSeq) {
  if (shownSeq !== null && shownSeq >= payload.seq) return null;
  return {
    title: payload.title,
    options: {
      body: payload.body,
      tag: payload.conversation,
      renotify: shownSeq !== null,
      data: { conversation: payload.conversation, seq: payload.seq },
    },
  };
}

/**
 * @param {AppWindow} window
 * @param {string} scope  the service worker's scope: the app's URL
 */
const isApp = (window, scope) => {
  try {
    return new URL(window.url).pathname === new URL(scope).pathname;
  } catch {
    return false;
  }
};

/**
 * The windows of the app in front (focused and visible): those to ask what
 * they show before a notification is shown.
 * @template {AppWindow} W
 * @param {W[]} windows
 * @param {string} scope
 * @returns {W[]}
 */
export function windowsInFront(windows, scope) {
  return windows.filter((window) => window.focused && window.visibilityState === "visible"
    && isApp(window, scope));
}

/**
 * Whether a push shows a notification: not when a window in front shows
 * that very conversation (the message is on screen there).
 * @param {PushPayload} payload
 * @param {(string | null)[]} showing  what each window in front answered it shows
 */
export function shouldShow(payload, showing) {
  return !showing.includes(payload.conversation);
}

/**
 * The window of the app a click on a notification goes to: the focused one,
 * else a visible one, else any; -1 when none is open (a new one opens).
 * Other pages of this origin (a file opened in a tab) are not the app.
 * @param {AppWindow[]} windows
 * @param {string} scope
 */
export function pickWindow(windows, scope) {
  const apps = windows.map((window, at) => ({ window, at })).filter(({ window }) => isApp(window, scope));
  const best = apps.find(({ window }) => window.focused)
    || apps.find(({ window }) => window.visibilityState === "visible") || apps[0];
  return best ? best.at : -1;
}

/**
 * The URL a new window opens at: the app, showing that message.
 * @param {string} scope
 * @param {string} conversation
 * @param {number} seq
 */
export function openUrl(scope, conversation, seq) {
  return new URL(routeHash(conversation, seq), scope).href;
}

/**
 * Where a notification's data (or the message a window got from the service
 * worker) says to go, or null if it is not one of ours.
 * @param {unknown} data
 * @returns {{id: string, seq: number} | null}
 */
export function openTarget(data) {
  const d = /** @type {any} */ (data);
  if (!d || typeof d !== "object" || typeof d.conversation !== "string"
    || !CONVERSATION.test(d.conversation) || !count(d.seq) || d.seq < 1) return null;
  return { id: d.conversation, seq: d.seq };
}

/**
 * The application server key as pushManager.subscribe takes it everywhere
 * (some browsers take the base64url text too, not all).
 * @param {string} key  base64url, no padding
 */
export function keyBytes(key) {
  const base64 = key.replace(/-/g, "+").replace(/_/g, "/");
  const raw = atob(base64 + "=".repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(raw, (char) => char.charCodeAt(0));
}

/**
 * The profile's state of this browser's push.
 * @param {{supported: boolean, permission: string, subscribed: boolean}} facts
 *   subscribed: this browser holds a subscription made for the signed-in user
 * @returns {PushState}
 */
export function pushState(facts) {
  if (!facts.supported) return "unsupported";
  if (facts.permission === "denied") return "denied";
  return facts.subscribed && facts.permission === "granted" ? "on" : "off";
}

/**
 * What the profile shows for a state: a sentence, and the button's label (null: no button).
 * @param {PushState} state
 * @returns {{text: string, button: string | null}}
 */
export function pushStateText(state) {
  switch (state) {
    case "unsupported":
      return { text: "This browser cannot show notifications while tidings is closed.", button: null };
    case "denied":
      return {
        text: "Blocked for this site. To allow them, open the site's settings from the icon "
          + "left of the address, set Notifications to Allow, and reload.",
        button: null,
      };
    case "on":
      return { text: "On. This browser shows new messages while tidings is closed.", button: "Turn off" };
    default:
      return { text: "Off.", button: "Turn on" };
  }
}

/**
 * A failure to turn push on or off, said quietly in the profile.
 * @param {unknown} failure  an ApiError (status, code) or a DOMException (name)
 */
export function pushErrorText(failure) {
  const f = /** @type {any} */ (failure) || {};
  if (f.status === 422) return "The server does not accept this browser's push service.";
  if (f.status === 0) return "The server cannot be reached. Try again later.";
  if (typeof f.status === "number") return `The server refused: ${f.message || f.status}.`;
  if (f.name === "NotAllowedError") return "Notifications were not allowed.";
  return "This browser's push service is not available now. Try again later.";
}
