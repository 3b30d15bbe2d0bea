/**
 * REST calls: one `request` that adds the key, sends JSON, and turns every failure into an
 * `AgentkitClientError` (the server's `{"error":{code,message,details}}` when it sent one).
 */
import { AgentkitClientError, codeForStatus, describe } from "./errors.ts";
import type { FetchLike } from "./types.ts";

export interface HttpContext {
  /** The server's base URL, without a trailing slash (`http://host:8000`, `https://host/prefix`). */
  base: string;
  apiKey?: string;
  fetch: FetchLike;
}

export interface RequestOptions {
  query?: Record<string, string | number | undefined>;
  /** Sent as JSON. */
  body?: unknown;
}

/** Resolves the configured URL (relative ones against the page, in a browser) to a base without a trailing slash. */
export function baseUrl(url: string): string {
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  let parsed: URL;
  try {
    parsed = new URL(url, page);
  } catch (error) {
    throw new AgentkitClientError({ status: 0, code: "bad_request", message: `Invalid server URL '${url}'`, cause: error });
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new AgentkitClientError({ status: 0, code: "bad_request", message: `The server URL must be http(s): '${url}'` });
  }
  parsed.search = "";
  parsed.hash = "";
  return parsed.href.replace(/\/+$/, "");
}

export async function request<T>(context: HttpContext, method: string, route: string, options: RequestOptions = {}): Promise<T> {
  const url = new URL(context.base + route);
  for (const [name, value] of Object.entries(options.query ?? {})) {
    if (value !== undefined) url.searchParams.set(name, String(value));
  }
  const headers: Record<string, string> = { accept: "application/json" };
  if (context.apiKey) headers.authorization = `Bearer ${context.apiKey}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  const send = context.fetch;
  let response: Response;
  try {
    response = await send(url.href, { method, headers, body });
  } catch (error) {
    throw new AgentkitClientError({
      status: 0,
      code: "network_error",
      message: `${method} ${url.pathname}: could not reach the server at ${context.base}: ${describe(error)}`,
      cause: error,
    });
  }
  const text = await response.text().catch((error: unknown) => {
    throw new AgentkitClientError({ status: response.status, code: "network_error", message: `${method} ${url.pathname}: the answer was cut off: ${describe(error)}`, cause: error });
  });
  if (!response.ok) throw errorFromResponse(method, url.pathname, response, text);
  try {
    return JSON.parse(text) as T;
  } catch (error) {
    throw new AgentkitClientError({
      status: response.status,
      code: "bad_response",
      message: `${method} ${url.pathname}: the server answered ${response.status} with something that is not JSON: ${text.slice(0, 200)}`,
      cause: error,
    });
  }
}

function errorFromResponse(method: string, pathname: string, response: Response, text: string): AgentkitClientError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not the server's JSON error (a proxy's page, say): described from the status.
  }
  const error = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  if (error && typeof error.code === "string" && typeof error.message === "string") {
    return new AgentkitClientError({ status: response.status, code: error.code, message: error.message, details: error.details });
  }
  const snippet = text.trim().slice(0, 200);
  return new AgentkitClientError({
    status: response.status,
    code: codeForStatus(response.status),
    message: `${method} ${pathname}: HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}${snippet ? `: ${snippet}` : ""}`,
  });
}
