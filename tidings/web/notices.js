// @ts-check
// While the tab is hidden: a sound and a system notification for new messages,
// each off until turned on in the profile (kept per user on this device).

import { $ } from "./dom.js";
import { DEFAULT_NOTICES, attachmentLabel, noticeFor, noticeText } from "./format.js";
import { S, load, me, save } from "./state.js";

const key = () => `tidings.notices.${me().id}`;

/** @returns {import("./format.js").NoticeSettings} */
export function noticeSettings() {
  return { ...DEFAULT_NOTICES, ...load(localStorage, key(), {}) };
}

/** @type {AudioContext | null} */
let audio = null;

/** A short two-note tone, made here (nothing is loaded). */
function chime() {
  try {
    audio = audio || new AudioContext();
    const now = audio.currentTime;
    for (const [at, hz] of [[0, 880], [0.12, 1320]]) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = hz;
      gain.gain.setValueAtTime(0.0001, now + at);
      gain.gain.exponentialRampToValueAtTime(0.15, now + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + at + 0.25);
      tone.connect(gain).connect(audio.destination);
      tone.start(now + at);
      tone.stop(now + at + 0.3);
    }
  } catch {
    // no audio here: the title still counts
  }
}

/**
 * A message arrived: sound and notification if due.
 * @param {import("./types.js").Message} message
 * @param {(id: number) => string} nameOf
 * @param {(id: string) => void} open
 */
export function noticeMessage(message, nameOf, open) {
  const entry = S.entries.get(message.conversation);
  if (!entry || !S.me) return;
  const due = noticeFor(noticeSettings(), {
    hidden: document.visibilityState === "hidden",
    own: message.sender === S.me.id,
    removed: entry.removed,
  });
  if (due.sound) chime();
  if (due.notify && "Notification" in window && Notification.permission === "granted") {
    const text = noticeText(entry.title, entry.type, nameOf(message.sender),
      attachmentLabel(message, message.body || ""));
    const shown = new Notification(text.title, { body: text.body, tag: message.conversation });
    shown.onclick = () => {
      window.focus();
      open(message.conversation);
      shown.close();
    };
  }
}

/** The profile's two switches, from and to the stored settings. */
export function showNoticeSettings() {
  const settings = noticeSettings();
  $("notice-sound").checked = settings.sound;
  $("notice-notify").checked = settings.notify;
  const supported = "Notification" in window;
  $("notice-notify").disabled = !supported || Notification.permission === "denied";
  $("notice-msg").textContent = !supported ? "This browser has no notifications."
    : Notification.permission === "denied" ? "Notifications are blocked for this site in the browser."
      : "";
}

export async function saveNoticeSettings() {
  const settings = { sound: $("notice-sound").checked, notify: $("notice-notify").checked };
  if (settings.sound) {
    // Made in the click, so the browser lets it play later.
    audio = audio || new AudioContext();
    audio.resume().catch(() => {});
  }
  if (settings.notify && "Notification" in window && Notification.permission === "default") {
    const answer = await Notification.requestPermission();
    if (answer !== "granted") settings.notify = false;
  }
  save(localStorage, key(), settings);
  showNoticeSettings();
}
