// The HTTP API, exactly as the SDKs use it: same routes, same Bearer key, same error shape.
// The web UI has no private endpoints; everything it shows comes through these calls.

const KEY_STORAGE = "steerlab.apiKey";

export function getKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

/** A failed call; `message` is the server's own text (it names the bad field), `param` the field. */
export class ApiError extends Error {
  constructor(status, message, param = null, code = null) {
    super(message);
    this.status = status;
    this.param = param;
    this.code = code;
  }
}

function headers(json) {
  const out = {};
  if (json) out["Content-Type"] = "application/json";
  const key = getKey();
  if (key) out.Authorization = `Bearer ${key}`;
  return out;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let param = null;
  let code = null;
  try {
    const body = await response.json();
    if (body && body.error) ({ message = message, param = null, code = null } = body.error);
  } catch {
    /* not JSON: keep the status line */
  }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("steerlab:auth-required", { detail: message }));
  return new ApiError(response.status, message, param, code);
}

/** Call the API; resolves to the decoded JSON body, rejects with ApiError. */
export async function call(method, path, body = undefined, { signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body !== undefined),
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, `cannot reach the server (${err.message})`);
  }
  if (!response.ok) throw await failure(response);
  return response.json();
}

export const get = (path, opts) => call("GET", path, undefined, opts);
export const post = (path, body, opts) => call("POST", path, body, opts);

/** GET with query parameters (skips empty ones). */
export function getWith(path, params, opts) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") query.set(k, v);
  return get(`${path}?${query}`, opts);
}

/**
 * Stream a chat completion (POST /v1/chat/completions with stream: true) and call
 * onDelta(text) per token and onEvents(names) when the server reports steering events.
 * Resolves to {text, events, finishReason}. Abort with `signal` (the server frees the row).
 */
export async function streamChat(body, { signal, onDelta = () => {}, onEvents = () => {} } = {}) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers(true),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let text = "";
  let finishReason = null;
  const events = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    // SSE: events are separated by a blank line; each of ours is one `data: ...` line.
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of frame.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return { text, events, finishReason };
        const chunk = JSON.parse(data);
        if (chunk.error) throw new ApiError(500, chunk.error.message || "generation failed");
        if (chunk.gf_event_names && chunk.gf_event_names.length) {
          events.push(...chunk.gf_event_names);
          onEvents(chunk.gf_event_names);
        }
        const choice = (chunk.choices || [])[0] || {};
        const delta = (choice.delta && choice.delta.content) || "";
        if (delta) {
          text += delta;
          onDelta(delta, text);
        }
        if (choice.finish_reason) finishReason = choice.finish_reason;
      }
    }
  }
  return { text, events, finishReason };
}
