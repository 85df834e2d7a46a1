// @ts-check
// The HTTP API of the protocol (/api/v1): one call, its errors as ApiError.

export class ApiError extends Error {
  /**
   * @param {number} status  0 when the server could not be reached
   * @param {string} code    the protocol's error code, or "network", or "http_{status}"
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * @typedef {object} ApiOptions
 * @property {string} [base]                       default "/api/v1"
 * @property {() => string | null} token           the bearer token, if signed in
 * @property {(path: string) => void} [onUnauthorized]  a 401 with a token (the session ended)
 * @property {typeof fetch} [fetch]
 */

/**
 * `api(method, path, body)`: the decoded JSON answer (null for 204), or an ApiError.
 * @param {ApiOptions} options
 */
export function createApi(options) {
  const base = options.base ?? "/api/v1";
  const fetchImpl = options.fetch ?? ((input, init) => fetch(input, init));
  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   * @returns {Promise<any>}
   */
  return async function api(method, path, body) {
    /** @type {Record<string, string>} */
    const headers = {};
    const token = options.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetchImpl(base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network", "The server cannot be reached.");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      if (response.status === 401 && token && options.onUnauthorized) options.onUnauthorized(path);
      throw new ApiError(response.status, error.code || `http_${response.status}`,
        error.message || response.statusText || "Request failed");
    }
    return data;
  };
}

/** @typedef {(method: string, path: string, body?: unknown) => Promise<any>} Api */

/**
 * What is wrong with a display name, or null: 1 to 64 characters once trimmed.
 * @param {string} name
 */
export function displayNameProblem(name) {
  const length = [...name.trim()].length;
  return length >= 1 && length <= 64 ? null : "A display name is 1 to 64 characters.";
}

/**
 * What is wrong with a new password, or null: 8 to 256 characters, typed twice alike.
 * @param {string} password
 * @param {string} again
 */
export function newPasswordProblem(password, again) {
  const length = [...password].length;
  if (length < 8 || length > 256) return "Choose a password of 8 to 256 characters.";
  if (password !== again) return "The two new passwords differ.";
  return null;
}

/**
 * PATCH /me: a new display name (trimmed); the updated user.
 * @param {Api} api
 * @param {string} displayName
 * @returns {Promise<import("./types.js").User>}
 */
export const updateMe = (api, displayName) =>
  api("PATCH", "/me", { display_name: displayName.trim() });

/**
 * POST /me/password: 204 (null); every other session of the user is revoked.
 * An ApiError 403 `forbidden` when `current` is wrong, 422 for a new one outside 8-256.
 * @param {Api} api
 * @param {string} current
 * @param {string} next
 * @returns {Promise<null>}
 */
export const changePassword = (api, current, next) =>
  api("POST", "/me/password", { current, new: next });
