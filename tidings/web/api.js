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
