// @ts-check
// A voice note recorded in the browser: the microphone button beside the
// paperclip starts it (getUserMedia, MediaRecorder), a bar above the
// composer shows the running clock with Stop and Cancel (Escape cancels),
// and Stop hands the recording to the upload path of view-attach.js with
// the length recorded, to be sent as a voice note. Nothing is kept: a
// reload, a chat switch or Cancel drops the recording.

import { $, el } from "./dom.js";
import {
  clockText, MAX_RECORDING_MS, microphoneProblem, recordingName, recordingType, recordingUnavailable,
  statedDuration,
} from "./recorder.js";
import { S } from "./state.js";

/**
 * How a finished note goes up: view-attach.js's attachFiles (passed in, so
 * this module does not import the one that wires it).
 * @typedef {(files: File[], options: {conversation: string, durationMs: number | null}) => void} Attach
 */

/** @type {Attach} */
let attach = () => {};

/**
 * The recording under way.
 * @typedef {object} Session
 * @property {string} conversation
 * @property {"starting" | "recording"} state
 * @property {MediaStream | null} stream
 * @property {MediaRecorder | null} recorder
 * @property {Blob[]} chunks
 * @property {number} started      performance.now() when the recorder started
 * @property {number} startedAt    Date.now() then, for the file's name
 * @property {number} length       ms recorded, fixed at Stop
 * @property {boolean} send        whether the end sends it (Stop) or drops it
 * @property {ReturnType<typeof setInterval> | null} ticker
 */

/** @type {Session | null} */
let session = null;
/** Why the last try failed (a refused microphone), shown until dismissed. @type {string | null} */
let problem = null;

/**
 * The microphone button: shown only where this browser can record.
 * @param {{attach: Attach, onDraw: (hook: () => void) => void}} uploads
 *   onDraw: called on each redraw of the open chat's uploads
 */
export function wireRecorder(uploads) {
  attach = uploads.attach;
  const button = $("btn-record");
  const unavailable = recordingUnavailable({
    mediaDevices: navigator.mediaDevices,
    MediaRecorder: typeof MediaRecorder === "undefined" ? undefined : MediaRecorder,
  });
  if (unavailable) {
    // Nothing the user can do here but change browsers: no button, the reason for whoever looks.
    button.hidden = true;
    button.title = unavailable;
    return;
  }
  button.hidden = false;
  button.addEventListener("click", () => {
    start();
  });
  // A recording belongs to the chat it started in: leaving that chat drops it.
  uploads.onDraw(() => {
    if (session && session.conversation !== S.openId) cancel();
  });
}

/** Start recording into the open chat (asks for the microphone the first time). */
async function start() {
  const conversation = S.openId;
  const entry = conversation ? S.entries.get(conversation) : undefined;
  if (session || !conversation || !entry || entry.removed) return;
  const type = recordingType(MediaRecorder.isTypeSupported.bind(MediaRecorder));
  if (!type) return; // wireRecorder hid the button already
  problem = null;
  /** @type {Session} */
  const current = { conversation, state: "starting", stream: null, recorder: null, chunks: [],
    started: 0, startedAt: 0, length: 0, send: false, ticker: null };
  session = current;
  draw();
  /** @type {MediaStream} */
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (error) {
    if (session === current) {
      session = null;
      problem = microphoneProblem(error);
      draw();
    }
    return;
  }
  if (session !== current) { // cancelled while the browser asked
    for (const track of stream.getTracks()) track.stop();
    return;
  }
  current.stream = stream;
  let recorder;
  try {
    recorder = new MediaRecorder(stream, { mimeType: type });
  } catch (error) {
    end(current);
    problem = microphoneProblem(error);
    draw();
    return;
  }
  current.recorder = recorder;
  recorder.addEventListener("dataavailable", (event) => {
    if (event.data.size) current.chunks.push(event.data);
  });
  recorder.addEventListener("stop", () => finish(current, type));
  recorder.addEventListener("error", () => {
    current.send = false;
    problem = "The recording failed.";
    end(current);
  });
  // A chunk a second: a long note is not one growing buffer inside the recorder.
  recorder.start(1000);
  current.state = "recording";
  current.started = performance.now();
  current.startedAt = Date.now();
  current.ticker = setInterval(() => tick(current), 250);
  draw();
  $("btn-rec-stop").focus();
}

/** @param {Session} current */
function tick(current) {
  // Left its chat (back on a phone, signed out) or the composer went away
  // (a mute): a redraw of that chat may never come, so the clock checks.
  if (current.conversation !== S.openId || !S.token || $("composer").hidden) {
    cancel();
    return;
  }
  const clock = document.getElementById("rec-clock");
  const length = performance.now() - current.started;
  if (clock) clock.textContent = clockText(length);
  if (length >= MAX_RECORDING_MS) stop(); // the longest note the server takes a length for
}

/** Stop and send (the recorder's last chunk comes first, then finish). */
function stop() {
  const current = session;
  if (!current || current.state !== "recording" || !current.recorder) return;
  current.length = performance.now() - current.started;
  current.send = true;
  current.recorder.stop();
}

/** Drop the recording. */
function cancel() {
  const current = session;
  if (!current) return;
  current.send = false;
  end(current);
}

/**
 * The recorder has handed over its last chunk: send the note if it was Stop.
 * @param {Session} current
 * @param {string} type
 */
function finish(current, type) {
  const send = current.send && current.chunks.length > 0;
  end(current);
  if (!send) return;
  const blobType = (current.recorder && current.recorder.mimeType) || type;
  const file = new File(current.chunks, recordingName(blobType, new Date(current.startedAt)),
    { type: blobType });
  attach([file], { conversation: current.conversation, durationMs: statedDuration(current.length) });
  const box = $("compose");
  if (!box.closest("[hidden]")) box.focus();
}

/**
 * Release the microphone and take the bar down.
 * @param {Session} current
 */
function end(current) {
  if (current.ticker !== null) clearInterval(current.ticker);
  current.ticker = null;
  if (current.recorder && current.recorder.state !== "inactive") {
    // Its "stop" event comes back to finish, which sends only on Stop.
    current.recorder.stop();
  }
  if (current.stream) for (const track of current.stream.getTracks()) track.stop();
  if (session === current) {
    const hadFocus = Boolean(document.activeElement && document.activeElement.closest("#recorder"));
    session = null;
    draw();
    if (hadFocus && !current.send) $("btn-record").focus();
  }
}

/** @param {KeyboardEvent} event */
function onKey(event) {
  if (event.key !== "Escape" || !session) return;
  // Escape is the recorder's while it runs (not the reply's or the dialog's under it).
  event.preventDefault();
  event.stopPropagation();
  cancel();
}

/** The bar above the composer: the clock, Stop, Cancel; or why the microphone failed. */
function draw() {
  const button = $("btn-record");
  button.setAttribute("aria-pressed", String(Boolean(session)));
  document.removeEventListener("keydown", onKey, true);
  if (session) document.addEventListener("keydown", onKey, true);
  const shown = document.getElementById("recorder");
  if (!session && !problem) {
    if (shown) shown.remove();
    return;
  }
  const bar = shown || newBar();
  if (!session) {
    bar.className = "recorder problem";
    bar.setAttribute("role", "alert");
    bar.removeAttribute("aria-label");
    const dismiss = el("button", "link", "Dismiss");
    dismiss.type = "button";
    dismiss.addEventListener("click", () => {
      problem = null;
      draw();
      button.focus();
    });
    bar.replaceChildren(el("span", "rec-problem", problem || ""), " ", dismiss);
    return;
  }
  bar.className = `recorder ${session.state}`;
  bar.setAttribute("role", "group");
  bar.setAttribute("aria-label", "Voice note");
  const dot = el("span", "rec-dot");
  dot.setAttribute("aria-hidden", "true");
  const label = el("span", "rec-label", session.state === "starting" ? "Starting the microphone…" : "Recording");
  const clock = el("span", "rec-clock", clockText(0));
  clock.id = "rec-clock";
  // A timer is not read aloud each tick (its role is not live); its name says what it counts.
  clock.setAttribute("role", "timer");
  clock.setAttribute("aria-label", "Recorded time");
  const stopButton = el("button", "primary", "Stop and send");
  stopButton.type = "button";
  stopButton.id = "btn-rec-stop";
  stopButton.disabled = session.state !== "recording";
  stopButton.addEventListener("click", stop);
  const cancelButton = el("button", "", "Cancel");
  cancelButton.type = "button";
  cancelButton.id = "btn-rec-cancel";
  cancelButton.addEventListener("click", cancel);
  bar.replaceChildren(dot, label, clock, stopButton, cancelButton);
}

/** The bar's element, put between the text box and the composer's buttons. */
function newBar() {
  const bar = el("div", "recorder");
  bar.id = "recorder";
  $("composer").insertBefore(bar, $("composer").querySelector(".composer-foot"));
  return bar;
}
