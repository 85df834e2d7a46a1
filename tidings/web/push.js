// @ts-check
// Web Push in this browser (PROTOCOL-v2 §8): the service worker's
// registration, turning push on and off (only ever from the profile's button:
// the permission prompt is never shown on load), and leaving no subscription
// behind when the person signs out, so another account here never gets
// their messages.

import { OPEN_MESSAGE, SHOWING_MESSAGE, keyBytes, openTarget, pushState } from "./push-rules.js";
import { api } from "./people.js";
import { load, me, save } from "./state.js";

const SCRIPT = "/sw.js";
// The user id this browser's subscription was made for.
const OWNER = "tidings.push.owner";
// A browser whose push service cannot be reached may never answer subscribe():
// the button gives up then (a subscription made later has no owner here, and
// the next session start drops it).
const SUBSCRIBE_MS = 30_000;

export function pushSupported() {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** This browser's subscription, if a service worker of the app holds one. */
async function subscription() {
  if (!pushSupported()) return null;
  const registration = await navigator.serviceWorker.getRegistration("/");
  return registration ? registration.pushManager.getSubscription() : null;
}

/** @returns {Promise<import("./push-rules.js").PushState>} */
export async function currentPushState() {
  const supported = pushSupported();
  let subscribed = false;
  if (supported) {
    try {
      subscribed = Boolean(await subscription()) && load(localStorage, OWNER, null) === me().id;
    } catch {
      subscribed = false;
    }
  }
  return pushState({
    supported, permission: supported ? Notification.permission : "default", subscribed,
  });
}

/**
 * Turn push on (a click on the profile's button): the browser's permission,
 * then a subscription to the server's key, then the server is told. A
 * refusal anywhere throws (the profile says it); a subscription the server
 * refused is dropped again.
 */
export async function turnOnPush() {
  if ((await Notification.requestPermission()) !== "granted") {
    throw new DOMException("notifications not granted", "NotAllowedError");
  }
  const { key } = await api("GET", "/push/vapid-key");
  await navigator.serviceWorker.register(SCRIPT, { scope: "/", type: "module" });
  const registration = await navigator.serviceWorker.ready;
  let held = await registration.pushManager.getSubscription();
  const applicationServerKey = keyBytes(key);
  if (held && !sameKey(held.options.applicationServerKey, applicationServerKey)) {
    await held.unsubscribe(); // made for another server key: its pushes would not verify
    held = null;
  }
  const made = held || await Promise.race([
    registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey }),
    new Promise((_, reject) => {
      setTimeout(() => reject(new DOMException("no answer", "AbortError")), SUBSCRIBE_MS);
    }),
  ]);
  try {
    await api("POST", "/push/subscriptions", made.toJSON());
  } catch (failure) {
    await made.unsubscribe().catch(() => {});
    throw failure;
  }
  save(localStorage, OWNER, me().id);
}

/**
 * @param {ArrayBuffer | null} held
 * @param {Uint8Array} key
 */
function sameKey(held, key) {
  if (!held) return false;
  const bytes = new Uint8Array(held);
  return bytes.length === key.length && bytes.every((byte, at) => byte === key[at]);
}

/**
 * Turn push off: this browser drops its subscription first (whatever the
 * server answers, no push reaches it now), then the server forgets it. With
 * no token (the session already ended) only the first: the push service
 * answers the server's next push 410 and the server deletes it then.
 * @param {string | null} token  the session's token, null if it ended
 */
export async function dropPush(token) {
  localStorage.removeItem(OWNER);
  let held = null;
  try {
    held = await subscription();
  } catch {
    held = null;
  }
  if (!held) return;
  const endpoint = held.endpoint;
  await held.unsubscribe().catch(() => {});
  if (!token) return;
  const answer = await fetch("/api/v1/push/subscriptions", {
    method: "DELETE",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ endpoint }),
  });
  if (!answer.ok && answer.status !== 401) throw Object.assign(new Error(answer.statusText), { status: answer.status });
}

/**
 * A session started: a subscription this browser holds for someone else is
 * dropped; one of this user's is given to the server again (the server may
 * have dropped it: 20 per user at most, or a push service's 410).
 */
export async function resumePush() {
  let held = null;
  try {
    held = await subscription();
  } catch {
    return;
  }
  if (!held) return;
  if (load(localStorage, OWNER, null) !== me().id || Notification.permission !== "granted") {
    await dropPush(null);
    return;
  }
  await api("POST", "/push/subscriptions", held.toJSON()).catch(() => {});
}

/**
 * The service worker's messages to this window: a click on a notification,
 * `open(conversation, seq)`; and, before it shows one, which conversation
 * this window shows (`showing()`, null for none).
 * @param {(id: string, seq: number) => void} open
 * @param {() => string | null} shown
 */
export function listenToWorker(open, shown) {
  if (!("serviceWorker" in navigator)) return;
  navigator.serviceWorker.addEventListener("message", (event) => {
    const type = event.data && event.data.type;
    if (type === SHOWING_MESSAGE && event.ports[0]) {
      event.ports[0].postMessage(document.visibilityState === "visible" ? shown() : null);
    } else if (type === OPEN_MESSAGE) {
      const target = openTarget(event.data);
      if (target) open(target.id, target.seq);
    }
  });
}

/** The notifications shown for a conversation, closed: it is open here now. */
export async function closePushNotices(/** @type {string} */ id) {
  if (!pushSupported()) return;
  try {
    const registration = await navigator.serviceWorker.getRegistration("/");
    if (!registration) return;
    for (const note of await registration.getNotifications({ tag: id })) note.close();
  } catch {
    // none to close
  }
}
