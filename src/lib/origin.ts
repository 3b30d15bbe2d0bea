/** Browser origins, as configured (`AGENTKIT_CORS_ORIGINS`) and as sent (`Origin`). */

/** `https://App.example:443/` → `https://app.example`: how browsers serialise an origin (an opaque one, `chrome-extension://…`, as written, lower-case, no trailing slash). */
export function normalizeOrigin(origin: string): string {
  try {
    const url = new URL(origin);
    return url.origin === "null" ? origin.trim().toLowerCase().replace(/\/+$/, "") : url.origin;
  } catch {
    return origin.trim().toLowerCase().replace(/\/+$/, "");
  }
}

/**
 * An origin as a browser may send it: `scheme://host[:port]`, nothing after but an optional slash.
 * http(s) origins are checked as URLs (a default port, upper case or a Unicode host are fine: they
 * are normalised); others (`chrome-extension://…`, `capacitor://localhost`, `tauri://localhost`)
 * have no URL origin, and are taken as written.
 */
export function isOrigin(origin: string): boolean {
  if (!URL.canParse(origin)) return false;
  const url = new URL(origin);
  if (url.search || url.hash || url.username || url.password) return false;
  if (url.protocol === "http:" || url.protocol === "https:") return url.pathname === "/" && /^https?:\/\/[^/?#]+\/?$/i.test(origin);
  return /^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]+\/?$/i.test(origin);
}
