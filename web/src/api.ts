// The REST API client: tokens, one error type, JSON calls, SSE streaming and XHR uploads.
//
// Tokens live in sessionStorage (a tab keeps its session across reloads; closing it signs out).
// A 401 triggers one refresh (rotation: the server hands back a new pair) and one retry; if the
// refresh fails the session is over and the page shows the login form.

import type { DocumentOut, Me, StreamEvent, TokenResponse } from "./types";

const ACCESS = "bunko.access";
const REFRESH = "bunko.refresh";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly detail: unknown = null,
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
}

let onSignedOut: () => void = () => undefined;
let refreshing: Promise<boolean> | null = null;

export function setSignedOutHandler(handler: () => void): void {
  onSignedOut = handler;
}

export function hasSession(): boolean {
  return !!sessionStorage.getItem(ACCESS);
}

function storeTokens(t: TokenResponse): void {
  sessionStorage.setItem(ACCESS, t.access_token);
  sessionStorage.setItem(REFRESH, t.refresh_token);
}

function clearTokens(): void {
  sessionStorage.removeItem(ACCESS);
  sessionStorage.removeItem(REFRESH);
}

/** Seconds until the access token expires (from its unverified payload; the server verifies). */
function accessTtl(): number {
  const token = sessionStorage.getItem(ACCESS);
  if (!token) return -1;
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const payload = JSON.parse(atob(part)) as { exp?: number };
    return (payload.exp ?? 0) - Date.now() / 1000;
  } catch {
    return -1;
  }
}

async function errorFrom(res: Response): Promise<ApiError> {
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  let detail: unknown = null;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string; detail?: unknown } };
    if (body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      detail = body.error.detail ?? null;
    }
  } catch {
    // not JSON (a proxy's error page): keep the status line
  }
  const retry = Number(res.headers.get("Retry-After"));
  return new ApiError(res.status, code, message, detail, Number.isFinite(retry) && retry > 0 ? retry : null);
}

export function errorFromXhr(xhr: XMLHttpRequest): ApiError {
  try {
    const body = JSON.parse(xhr.responseText) as { error?: { code?: string; message?: string; detail?: unknown } };
    if (body.error) {
      return new ApiError(xhr.status, body.error.code ?? `http_${xhr.status}`, body.error.message ?? "", body.error.detail);
    }
  } catch {
    // fall through
  }
  return new ApiError(xhr.status, xhr.status === 0 ? "network" : `http_${xhr.status}`, xhr.statusText || "network error");
}

export async function refreshTokens(): Promise<boolean> {
  const refresh = sessionStorage.getItem(REFRESH);
  if (!refresh) return false;
  refreshing ??= (async () => {
    try {
      const res = await fetch("/api/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token: refresh }),
      });
      if (!res.ok) return false;
      storeTokens((await res.json()) as TokenResponse);
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** A valid access token, refreshed first when it is about to expire (uploads cannot retry cheaply). */
export async function freshToken(): Promise<string> {
  if (accessTtl() < 60) await refreshTokens();
  return sessionStorage.getItem(ACCESS) ?? "";
}

function endSession(): void {
  clearTokens();
  onSignedOut();
}

/** fetch with the bearer token; one refresh-and-retry on 401; non-2xx becomes an ApiError. */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const send = () => {
    const headers = new Headers(init.headers);
    const token = sessionStorage.getItem(ACCESS);
    if (token) headers.set("Authorization", `Bearer ${token}`);
    return fetch(path, { ...init, headers });
  };
  let res = await send();
  if (res.status === 401 && sessionStorage.getItem(REFRESH)) {
    if (await refreshTokens()) {
      res = await send();
    }
    if (res.status === 401) {
      const err = await errorFrom(res);
      endSession();
      throw err;
    }
  }
  if (!res.ok) throw await errorFrom(res);
  return res;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await request(path)).json()) as T;
}

export async function sendJson<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await request(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (res.status === 204 ? undefined : await res.json()) as T;
}

export async function login(username: string, password: string): Promise<void> {
  const res = await fetch("/api/v1/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  if (!res.ok) throw await errorFrom(res);
  storeTokens((await res.json()) as TokenResponse);
}

export async function logout(): Promise<void> {
  const refresh = sessionStorage.getItem(REFRESH);
  try {
    await sendJson("POST", "/api/v1/auth/logout", refresh ? { refresh_token: refresh } : undefined);
  } catch {
    // the tokens are dropped here either way
  }
  endSession();
}

export function me(): Promise<Me> {
  return getJson<Me>("/api/v1/auth/me");
}

/** An authenticated binary (thumbnail, page image) as an object URL an <img> can show. */
export async function blobUrl(path: string): Promise<string> {
  const res = await request(path);
  return URL.createObjectURL(await res.blob());
}

/**
 * POST /api/v1/query/stream and yield its Server-Sent Events. EventSource cannot POST or send an
 * Authorization header, so the body is read from fetch's ReadableStream and parsed here.
 */
export async function* streamQuery(body: unknown, signal?: AbortSignal): AsyncGenerator<StreamEvent> {
  const res = await request("/api/v1/query/stream", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify(body),
    signal,
  });
  if (!res.body) throw new ApiError(500, "no_body", "the stream had no body");
  yield* parseSse(res.body);
}

export async function* parseSse(stream: ReadableStream<Uint8Array>): AsyncGenerator<StreamEvent> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value, { stream: !done }).replace(/\r\n?/g, "\n");
    let cut: number;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const raw = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const event = parseSseEvent(raw);
      if (event) yield event;
    }
    if (done) break;
  }
  const tail = parseSseEvent(buffer);
  if (tail) yield tail;
}

function parseSseEvent(raw: string): StreamEvent | null {
  let name = "message";
  const data: string[] = [];
  for (const line of raw.split("\n")) {
    if (line.startsWith(":")) continue; // comment / keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const parsed = JSON.parse(data.join("\n")) as StreamEvent;
  return { ...parsed, type: parsed.type ?? name } as StreamEvent;
}

/** Upload one PDF with XMLHttpRequest, whose upload progress events fetch does not expose. */
export function uploadPdf(
  collection: string,
  file: File,
  token: string,
  onProgress: (fraction: number) => void,
): { promise: Promise<DocumentOut>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<DocumentOut>((resolve, reject) => {
    xhr.open("POST", `/api/v1/collections/${encodeURIComponent(collection)}/documents`);
    xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.responseType = "text";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText) as DocumentOut);
      else reject(errorFromXhr(xhr));
    };
    xhr.onerror = () => reject(errorFromXhr(xhr));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "aborted"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
