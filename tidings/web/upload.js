// @ts-check
// Uploading a file (PROTOCOL-v2 §3): POST /api/v1/files with the raw bytes and
// `?name=`, through XMLHttpRequest for its upload progress.

import { ApiError } from "./api.js";

/**
 * The file object, or an ApiError (status 0 when the server cannot be reached).
 * @param {Blob} blob
 * @param {string} name
 * @param {{token: () => string | null, onProgress?: (fraction: number) => void,
 *   onUnauthorized?: () => void, base?: string, durationMs?: number | null}} options
 *   durationMs: a recording's length, which the server keeps for audio whose
 *   container does not say it (a live WebM or Ogg: docs/protocol.md, extensions)
 * @returns {{done: Promise<import("./types.js").Attachment>, abort: () => void}}
 */
export function uploadFile(blob, name, options) {
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open("POST", uploadPath(name, options.durationMs, options.base));
    const token = options.token();
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    // The server reads the type from the bytes; this header only keeps proxies calm.
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.responseType = "text";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && options.onProgress) options.onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && data && data.id) {
        resolve(data);
        return;
      }
      const error = (data && data.error) || {};
      if (xhr.status === 401 && token && options.onUnauthorized) options.onUnauthorized();
      reject(new ApiError(xhr.status, error.code || `http_${xhr.status}`,
        error.message || xhr.statusText || "Upload failed"));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "network", "The server cannot be reached.")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "aborted", "The upload was cancelled.")));
    xhr.send(blob);
  });
  return { done, abort: () => xhr.abort() };
}

/**
 * The upload's path and query.
 * @param {string} name
 * @param {number | null | undefined} durationMs
 * @param {string} [base]
 */
export function uploadPath(name, durationMs, base = "/api/v1") {
  const stated = durationMs && durationMs > 0 ? `&duration_ms=${Math.round(durationMs)}` : "";
  return `${base}/files?name=${encodeURIComponent(name)}${stated}`;
}
