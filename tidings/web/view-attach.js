// @ts-check
// Files from this device into the open chat: the attach button, a pasted
// image, a file dropped on the chat, a voice note recorded (view-record.js).
// Each is uploaded (with its progress, a retry on failure), then sent as an
// image, a voice note or a file.

import { ApiError } from "./api.js";
import { $, el } from "./dom.js";
import { fileKindFor, uploadProblem } from "./format.js";
import { sendAttachment } from "./live.js";
import { signedOut } from "./session.js";
import { S } from "./state.js";
import { uploadFile } from "./upload.js";
import { wireRecorder } from "./view-record.js";

/**
 * One file on its way up (kept in memory only: a reload forgets it).
 * @typedef {object} Upload
 * @property {number} id
 * @property {string} conversation
 * @property {File} file
 * @property {number | null} durationMs   a recording's length (view-record.js)
 * @property {"uploading" | "failed"} state
 * @property {number} progress   0 to 1
 * @property {string | null} error
 * @property {(() => void) | null} abort
 */

/** @type {Upload[]} */
const uploads = [];
let nextId = 1;

/** Called on each drawUploads (the recorder follows the open chat by it). @type {(() => void)[]} */
const drawHooks = [];

/**
 * Upload the files into a chat (the open one by default): each goes at
 * once, and is sent as soon as it is up.
 * @param {Iterable<File>} files
 * @param {{conversation?: string | null, durationMs?: number | null}} [options]
 */
export function attachFiles(files, options = {}) {
  const conversation = options.conversation ?? S.openId;
  const entry = conversation ? S.entries.get(conversation) : undefined;
  if (!conversation || !entry || entry.removed) return;
  for (const file of files) {
    /** @type {Upload} */
    const upload = { id: nextId++, conversation, file, durationMs: options.durationMs ?? null,
      state: "uploading", progress: 0, error: null, abort: null };
    uploads.push(upload);
    start(upload);
  }
  drawUploads();
}

/** @param {Upload} upload */
function start(upload) {
  upload.state = "uploading";
  upload.progress = 0;
  upload.error = null;
  const { done, abort } = uploadFile(upload.file, upload.file.name || "file", {
    token: () => S.token,
    durationMs: upload.durationMs,
    onUnauthorized: () => signedOut("Your session has ended. Sign in again."),
    onProgress: (fraction) => {
      upload.progress = fraction;
      drawUploads();
    },
  });
  upload.abort = abort;
  done.then((file) => {
    drop(upload);
    sendAttachment(file, kindOf(upload.file, file), upload.conversation);
  }, (/** @type {unknown} */ error) => {
    upload.abort = null;
    if (error instanceof ApiError && error.code === "aborted") return;
    upload.state = "failed";
    upload.error = error instanceof ApiError
      ? uploadProblem(error.status, error.code, error.message)
      : uploadProblem(-1);
    drawUploads();
  });
}

/**
 * The kind to send: what the server found in the bytes decides an image
 * (PROTOCOL-v2 §3); audio goes as a voice note.
 * @param {File} local
 * @param {import("./types.js").Attachment} file
 */
function kindOf(local, file) {
  const found = fileKindFor(file.content_type);
  if (found === "image") return "image";
  if (found === "voice" || fileKindFor(local.type) === "voice") {
    return file.content_type.startsWith("audio/") ? "voice" : "file";
  }
  return "file";
}

/** @param {Upload} upload */
function drop(upload) {
  const at = uploads.indexOf(upload);
  if (at >= 0) uploads.splice(at, 1);
  drawUploads();
}

/** The open chat's uploads, as quiet lines above the composer. */
export function drawUploads() {
  for (const hook of drawHooks) hook();
  const box = $("uploads");
  if (!box) return;
  const shown = uploads.filter((u) => u.conversation === S.openId);
  box.hidden = !shown.length;
  box.replaceChildren(...shown.map((upload) => {
    const line = el("div", `upload ${upload.state}`);
    line.dataset.upload = String(upload.id);
    const name = upload.file.name || "file";
    if (upload.state === "uploading") {
      line.appendChild(el("span", "upload-name", `Uploading ${name}…`));
      const bar = el("progress");
      bar.max = 1;
      bar.value = upload.progress;
      bar.setAttribute("aria-label", `Uploading ${name}`);
      line.appendChild(bar);
    } else {
      line.setAttribute("role", "alert");
      line.appendChild(el("span", "upload-error", `${name}: ${upload.error || "not sent"}`));
      const retry = el("button", "link", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => {
        start(upload);
        drawUploads();
      });
      line.append(" ", retry);
    }
    const cancel = el("button", "link", upload.state === "uploading" ? "Cancel" : "Dismiss");
    cancel.type = "button";
    cancel.addEventListener("click", () => {
      if (upload.abort) upload.abort();
      drop(upload);
    });
    line.append(" · ", cancel);
    return line;
  }));
}

/** The attach button, paste of files into the composer, drop on the chat, and the voice recorder. */
export function wireAttach() {
  wireRecorder({ attach: attachFiles, onDraw: (hook) => drawHooks.push(hook) });
  const input = $("attach-input");
  $("btn-attach").addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    attachFiles(Array.from(/** @type {FileList} */ (input.files)));
    input.value = "";
    $("compose").focus();
  });
  $("compose").addEventListener("paste", (/** @type {ClipboardEvent} */ event) => {
    const files = Array.from(event.clipboardData ? event.clipboardData.files : []);
    if (!files.length) return; // text pastes as text
    event.preventDefault();
    attachFiles(files);
  });
  const pane = $("pane-chat");
  let depth = 0;
  /** @param {DragEvent} event */
  const hasFiles = (event) => Boolean(event.dataTransfer && event.dataTransfer.types.includes("Files"));
  pane.addEventListener("dragenter", (/** @type {DragEvent} */ event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth++;
    pane.classList.add("dropping");
  });
  pane.addEventListener("dragover", (/** @type {DragEvent} */ event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
  });
  pane.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) pane.classList.remove("dropping");
  });
  pane.addEventListener("drop", (/** @type {DragEvent} */ event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    pane.classList.remove("dropping");
    const composerShown = !$("composer").hidden;
    if (composerShown && event.dataTransfer) attachFiles(Array.from(event.dataTransfer.files));
  });
}
