/**
 * Built-in `http_fetch` tool: an HTTP GET of an allowlisted http(s) URL. Redirects are followed by
 * hand so every hop is checked against the allowlist; the body is read from the stream up to a byte
 * limit; one deadline covers the whole fetch. Off unless an agent enables it.
 */
import { z } from "zod";
import { errorMessage } from "../errors.ts";
import { raceAbort } from "../lib/abort.ts";
import { VERSION } from "../version.ts";
import { ToolError, type Tool } from "./tool.ts";

/** A host rule parsed from one allowlist entry. */
export interface HostRule {
  /** Normalised host name or IP literal (`example.com`, `127.0.0.1`, `[::1]`). */
  host: string;
  /** `*.host`: any subdomain of `host`, at any depth, but not `host` itself. */
  subdomains: boolean;
  /** Only this port (as a string, like `URL.port`); any port when absent. */
  port?: string;
}

const IP_LITERAL = /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\])$/;

/** Parses `[*.]host[:port]`; undefined when the entry is not a valid pattern. */
export function parseHostPattern(pattern: string): HostRule | undefined {
  const subdomains = pattern.startsWith("*.");
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(subdomains ? pattern.slice(2) : pattern);
  if (!match || /[*/?#@\\\s]/.test(match[1]!)) return undefined;
  let host: string;
  try {
    // The URL parser normalises the host exactly as it will normalise the URLs we check (case,
    // IDNA to punycode, IPv4 shorthands like 127.1), so the comparison is like for like.
    host = new URL(`http://${match[1]}`).hostname;
  } catch {
    return undefined; // not a host at all: the caller reports the pattern as invalid
  }
  const port = match[2] === undefined ? undefined : String(Number(match[2]));
  if (port !== undefined && Number(port) > 65535) return undefined;
  // `*.10.0.0.1` would allow DNS names like `evil.10.0.0.1`; `*.com` would allow a whole TLD.
  if (subdomains && (IP_LITERAL.test(host) || !host.includes("."))) return undefined;
  return { host, subdomains, port };
}

/** Whether a parsed http(s) URL's host (and port) matches one of `rules` (see `HttpFetchHostPattern`). */
export function matchesHostRules(rules: readonly HostRule[], url: URL): boolean {
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  return rules.some(
    (rule) =>
      (rule.subdomains ? url.hostname.endsWith(`.${rule.host}`) : url.hostname === rule.host) &&
      (rule.port === undefined || rule.port === port),
  );
}

/**
 * One allowlist entry, matched against the request URL's host (after the URL parser normalises it:
 * lower case, punycode, IPv4 shorthands):
 * - `example.com` matches exactly that host, not its subdomains;
 * - `*.example.com` matches every subdomain at any depth (`a.example.com`, `a.b.example.com`) but
 *   not `example.com` itself: list both to allow both. Not allowed on IP addresses or a bare TLD;
 * - an optional `:port` (`127.0.0.1:8080`) restricts the entry to that port (the scheme's default
 *   port when the URL has none); without one, any port is allowed.
 * IP addresses are written like hosts (`127.0.0.1`, `[::1]`). The rule is by name only: a listed
 * name that resolves to a private address is still allowed.
 */
export const HttpFetchHostPattern = z
  .string()
  .trim()
  .min(1)
  .max(260)
  .refine((pattern) => parseHostPattern(pattern) !== undefined, {
    message: "Expected a host pattern: 'example.com', '*.example.com' or '127.0.0.1:8080'",
  });

/** Options of the `http_fetch` tool, as they appear in an agent's config (strict: no unknown keys). */
export const HttpFetchOptions = z.strictObject({
  /** Hosts the tool may fetch from, redirects included (see `HttpFetchHostPattern`). */
  allowHosts: z.array(HttpFetchHostPattern).min(1),
  /** The body is cut at this many bytes (after decompression) and reported as truncated. */
  maxBytes: z.number().int().positive().max(50 * 1024 * 1024).default(100_000),
  /** Deadline for the whole fetch: every redirect hop and reading the body. */
  timeoutMs: z.number().int().positive().max(300_000).default(15_000),
  /** Redirects followed before giving up. */
  maxRedirects: z.number().int().min(0).max(20).default(5),
});
export type HttpFetchOptions = z.infer<typeof HttpFetchOptions>;

/** The arguments the model passes: a URL and nothing else (no method, headers or body). */
export const HttpFetchInput = z.strictObject({
  url: z.string().min(1).max(4096).describe("Absolute http:// or https:// URL"),
});
export type HttpFetchInput = z.infer<typeof HttpFetchInput>;

/** What the model gets back. */
export interface HttpFetchResult {
  /** The URL finally fetched, after redirects. */
  url: string;
  status: number;
  content_type: string | null;
  body: string;
  /** True when the body was longer than `maxBytes` and was cut. */
  truncated: boolean;
}

/** The subset of `fetch` the tool uses; Bun's global `fetch` fits. */
export type FetchFunction = (url: string, init: RequestInit) => Promise<Response>;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const TEXT_MEDIA_TYPES = new Set([
  "application/json",
  "application/xml",
  "application/javascript",
  "application/ecmascript",
  "application/x-ndjson",
  "application/x-www-form-urlencoded",
  "application/yaml",
  "application/x-yaml",
  "application/toml",
]);

/**
 * Creates the `http_fetch` tool. Throws (a ZodError) when `options` are invalid.
 * @example
 * const tool = createHttpFetchTool({ allowHosts: ["*.wikipedia.org"], maxBytes: 100_000, timeoutMs: 10_000 });
 */
export function createHttpFetchTool(
  options: z.input<typeof HttpFetchOptions> & { fetch?: FetchFunction },
): Tool<HttpFetchInput> {
  const { fetch: fetchFunction = fetch, ...rest } = options;
  const settings = HttpFetchOptions.parse(rest);
  const rules = settings.allowHosts.map((pattern) => parseHostPattern(pattern)!);
  const allowed = settings.allowHosts.join(", ");

  /** Returns the URL if it may be fetched, else throws a ToolError saying why. */
  function checkUrl(url: URL, context: string): URL {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new ToolError("invalid_arguments", `${context}: only http and https URLs can be fetched, not ${url.protocol}`, false);
    }
    if (url.username || url.password) {
      throw new ToolError("invalid_arguments", `${context}: URLs with credentials are not allowed`, false);
    }
    if (!matchesHostRules(rules, url)) {
      throw new ToolError(
        "invalid_arguments",
        `${context}: host '${url.host}' is not on this agent's http_fetch allowlist (allowed: ${allowed})`,
        false,
      );
    }
    return url;
  }

  async function fetchFollowingRedirects(start: URL, signal: AbortSignal): Promise<HttpFetchResult> {
    let current = start;
    for (let redirects = 0; ; redirects++) {
      const response = await fetchFunction(current.href, {
        method: "GET",
        redirect: "manual",
        signal,
        headers: {
          accept: "text/html, text/plain, application/json, */*;q=0.5",
          "user-agent": `agentkit/${VERSION} (http_fetch)`,
        },
      });
      const location = REDIRECT_STATUSES.has(response.status) ? response.headers.get("location") : null;
      if (location === null) return readResponse(response, current, signal);
      discardBody(response);
      if (redirects >= settings.maxRedirects) {
        throw new ToolError("execution_failed", `http_fetch: more than ${settings.maxRedirects} redirects, last to ${location}`, false);
      }
      let next: URL;
      try {
        next = new URL(location, current);
      } catch {
        throw new ToolError("execution_failed", `http_fetch: ${current.href} redirected to an invalid URL '${location}'`, false);
      }
      current = checkUrl(next, `${current.href} redirected to ${next.href}`);
    }
  }

  async function readResponse(response: Response, url: URL, signal: AbortSignal): Promise<HttpFetchResult> {
    const contentType = response.headers.get("content-type");
    const result = { url: url.href, status: response.status, content_type: contentType };
    if (!isTextual(contentType)) {
      discardBody(response);
      return { ...result, body: `[${contentType} content not shown: http_fetch returns text only]`, truncated: false };
    }
    if (!response.body) return { ...result, body: "", truncated: false };
    const { text, truncated } = await readText(response.body, settings.maxBytes, signal, charsetOf(contentType));
    return { ...result, body: text, truncated };
  }

  return {
    name: "http_fetch",
    description:
      `Fetches a URL with HTTP GET and returns {url, status, content_type, body, truncated}. The body is text, ` +
      `cut at ${settings.maxBytes} bytes (then truncated is true). Only these hosts can be fetched: ${allowed}.`,
    inputSchema: HttpFetchInput,
    // GET only (no method, headers or body from the model): safe to run again after an interruption.
    idempotent: true,
    async execute({ url }, { abortSignal }) {
      let start: URL;
      try {
        start = new URL(url);
      } catch {
        throw new ToolError("invalid_arguments", `http_fetch: '${url}' is not an absolute URL`, false);
      }
      checkUrl(start, `http_fetch: ${start.href}`);
      const timeout = AbortSignal.timeout(settings.timeoutMs);
      const signal = AbortSignal.any([abortSignal, timeout]);
      try {
        return await fetchFollowingRedirects(start, signal);
      } catch (error) {
        if (abortSignal.aborted) throw abortSignal.reason;
        if (timeout.aborted) {
          throw new ToolError("timeout", `http_fetch: ${start.href} did not respond completely within ${settings.timeoutMs} ms`, true);
        }
        if (error instanceof ToolError) throw error;
        throw new ToolError("execution_failed", `http_fetch: GET ${start.href} failed: ${errorMessage(error)}`, true, { cause: error });
      }
    },
  };
}

/** Reads at most `maxBytes` of the stream, then stops the download. */
async function readText(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  signal: AbortSignal,
  charset: string | undefined,
): Promise<{ text: string; truncated: boolean }> {
  const decoder = createDecoder(charset);
  const reader = body.getReader();
  let received = 0;
  let text = "";
  let finished = false;
  try {
    while (true) {
      // raceAbort: a stalled body must not outlive the deadline even if the stream ignores the signal.
      const { done, value } = await raceAbort(reader.read(), signal);
      if (done) {
        finished = true;
        return { text: text + decoder.decode(), truncated: false };
      }
      const room = maxBytes - received;
      if (value.byteLength > room) {
        // No final flush: a multi-byte character cut at the limit is dropped rather than shown as U+FFFD.
        return { text: text + decoder.decode(value.subarray(0, room), { stream: true }), truncated: true };
      }
      received += value.byteLength;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    if (!finished) {
      // Stops the download and frees the connection. A failing cancel leaves nothing to clean up.
      reader.cancel().catch(() => {});
    }
  }
}

function discardBody(response: Response): void {
  // The body is not wanted (a redirect, binary content); a failing cancel leaves nothing to clean up.
  response.body?.cancel().catch(() => {});
}

function mediaTypeOf(contentType: string | null): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

/** Text we can show the model; a missing content type is tried as text. */
function isTextual(contentType: string | null): boolean {
  const mediaType = mediaTypeOf(contentType);
  return (
    mediaType === "" ||
    mediaType.startsWith("text/") ||
    mediaType.endsWith("+json") ||
    mediaType.endsWith("+xml") ||
    TEXT_MEDIA_TYPES.has(mediaType)
  );
}

function charsetOf(contentType: string | null): string | undefined {
  const match = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(contentType ?? "");
  return match?.[1];
}

function createDecoder(charset: string | undefined): TextDecoder {
  if (charset) {
    try {
      // Bun types the label as a closed union; the constructor checks it at run time (see catch).
      return new TextDecoder(charset as ConstructorParameters<typeof TextDecoder>[0]);
    } catch {
      // An unknown or unsupported charset label: fall back to UTF-8, the web's default.
    }
  }
  return new TextDecoder("utf-8");
}
