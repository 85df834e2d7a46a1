// @ts-check
// The service worker, served at /sw.js so its scope is the whole app (a
// module worker: it imports the rules it shares with the page). It shows Web
// Push's notifications (PROTOCOL-v2 §8), sets the app badge, and opens a
// conversation when one is clicked. It caches nothing: the page is always
// the running server's.

import {
  OPEN_MESSAGE, SHOWING_MESSAGE, notificationFor, openTarget, openUrl, pickWindow, readPayload,
  shouldShow, windowsInFront,
} from "/static/push-rules.js";

// The worker's global scope (ServiceWorkerGlobalScope; tsconfig checks with
// the page's types, which do not describe it).
const sw = /** @type {any} */ (self);

sw.addEventListener("install", () => sw.skipWaiting());
sw.addEventListener("activate", (/** @type {any} */ event) => event.waitUntil(sw.clients.claim()));

/** @returns {Promise<any[]>} the windows of this origin (WindowClient), controlled or not */
const windows = () => sw.clients.matchAll({ type: "window", includeUncontrolled: true });

// How long a window in front has to say what it shows (a busy or frozen one: shown anyway).
const ASK_MS = 1000;

/**
 * The conversation a window shows, as it answers; null if none or no answer.
 * @param {any} client  a WindowClient
 * @returns {Promise<string | null>}
 */
function showing(client) {
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (event) => resolve(typeof event.data === "string" ? event.data : null);
    setTimeout(() => resolve(null), ASK_MS);
    client.postMessage({ type: SHOWING_MESSAGE }, [channel.port2]);
  });
}

/** @param {number} total */
async function setBadge(total) {
  try {
    if (total > 0 && sw.navigator.setAppBadge) await sw.navigator.setAppBadge(total);
    else if (total === 0 && sw.navigator.clearAppBadge) await sw.navigator.clearAppBadge();
  } catch {
    // no badge here (not installed as an app): the notification still shows
  }
}

/** @param {any} event  a PushEvent */
async function onPush(event) {
  let data = null;
  try {
    data = event.data ? event.data.json() : null;
  } catch {
    data = null;
  }
  const payload = readPayload(data);
  if (!payload) return;
  await setBadge(payload.total_unread);
  const front = windowsInFront(await windows(), sw.registration.scope);
  if (!shouldShow(payload, await Promise.all(front.map(showing)))) return;
  const shown = await sw.registration.getNotifications({ tag: payload.conversation });
  const seqs = shown.map((/** @type {any} */ note) => Number(note.data?.seq) || 0);
  const note = notificationFor(payload, seqs.length ? Math.max(...seqs) : null);
  if (note) await sw.registration.showNotification(note.title, note.options);
}

/** @param {unknown} data  the clicked notification's data */
async function openAt(data) {
  const target = openTarget(data);
  if (!target) return;
  const open = await windows();
  const at = pickWindow(open, sw.registration.scope);
  if (at < 0) {
    await sw.clients.openWindow(openUrl(sw.registration.scope, target.id, target.seq));
    return;
  }
  let client = open[at];
  try {
    client = (await client.focus()) || client;
  } catch {
    // not allowed to focus it: it still opens the conversation
  }
  client.postMessage({ type: OPEN_MESSAGE, conversation: target.id, seq: target.seq });
}

sw.addEventListener("push", (/** @type {any} */ event) => event.waitUntil(onPush(event)));

sw.addEventListener("notificationclick", (/** @type {any} */ event) => {
  event.notification.close();
  event.waitUntil(openAt(event.notification.data));
});
