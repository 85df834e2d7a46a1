// @ts-check
// What the voice recorder decides without touching the page: whether this
// browser can record at all, the type it records in, the running clock and
// the note's file name. view-record.js does the recording itself.

/**
 * Opus in Ogg (Firefox), else in WebM (Chromium), else MP4 (Safari, whose
 * recorder offers nothing else): all audio the server knows (PROTOCOL-v2 §3).
 */
export const RECORDING_TYPES = ["audio/ogg;codecs=opus", "audio/webm;codecs=opus", "audio/mp4"];

/** The longest note: the server keeps a stated length of at most an hour (docs/protocol.md). */
export const MAX_RECORDING_MS = 3_600_000;

/**
 * The type to record in, or null when the browser can record neither.
 * @param {(type: string) => boolean} isTypeSupported   MediaRecorder.isTypeSupported
 * @returns {string | null}
 */
export function recordingType(isTypeSupported) {
  for (const type of RECORDING_TYPES) {
    try {
      if (isTypeSupported(type)) return type;
    } catch {
      // An old recorder that throws on a type it does not know: try the next.
    }
  }
  return null;
}

/**
 * Why this page cannot record, or null when it can. Without a secure
 * context (plain http to another host) a browser has no mediaDevices.
 * @param {{mediaDevices?: {getUserMedia?: unknown}, MediaRecorder?: {isTypeSupported?: (type: string) => boolean}}} env
 * @returns {string | null}
 */
export function recordingUnavailable(env) {
  if (!env.mediaDevices || typeof env.mediaDevices.getUserMedia !== "function") {
    return "This browser offers no microphone to this page (it needs https).";
  }
  const recorder = env.MediaRecorder;
  if (!recorder || typeof recorder.isTypeSupported !== "function") {
    return "This browser cannot record audio.";
  }
  if (!recordingType(recorder.isTypeSupported.bind(recorder))) {
    return "This browser cannot record Opus audio.";
  }
  return null;
}

/**
 * What a refused getUserMedia means to the user.
 * @param {unknown} error
 */
export function microphoneProblem(error) {
  const name = error && typeof error === "object" && "name" in error ? String(error.name) : "";
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "The microphone is blocked: allow it for this site to record a voice note.";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") {
    return "No microphone was found.";
  }
  if (name === "NotReadableError" || name === "AbortError") {
    return "The microphone is in use by another program.";
  }
  return "The microphone could not be started.";
}

/**
 * The running clock: whole seconds recorded, as m:ss (h:mm:ss past an hour).
 * Rounded down, so it ticks as each second completes.
 * @param {number} ms
 */
export function clockText(ms) {
  const total = Math.max(0, Math.floor((Number.isFinite(ms) ? ms : 0) / 1000));
  const seconds = total % 60;
  const minutes = Math.floor(total / 60) % 60;
  const hours = Math.floor(total / 3600);
  const ss = String(seconds).padStart(2, "0");
  return hours ? `${hours}:${String(minutes).padStart(2, "0")}:${ss}` : `${minutes}:${ss}`;
}

/**
 * The note's file name: when it was recorded, local time, with the
 * container's extension (the server reads the type from the bytes anyway).
 * @param {string} type   the recorder's mimeType
 * @param {Date} when
 */
export function recordingName(type, when) {
  const extension = type.startsWith("audio/ogg") ? "ogg" : type.startsWith("audio/mp4") ? "m4a" : "webm";
  const two = (/** @type {number} */ n) => String(n).padStart(2, "0");
  const day = `${when.getFullYear()}-${two(when.getMonth() + 1)}-${two(when.getDate())}`;
  const time = `${two(when.getHours())}${two(when.getMinutes())}${two(when.getSeconds())}`;
  return `voice-${day}-${time}.${extension}`;
}

/**
 * The length to state to the server: whole milliseconds within its bounds,
 * or null when there is nothing worth stating.
 * @param {number} ms
 * @returns {number | null}
 */
export function statedDuration(ms) {
  if (!Number.isFinite(ms) || ms < 1) return null;
  return Math.min(MAX_RECORDING_MS, Math.round(ms));
}
