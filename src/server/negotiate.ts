/**
 * Content negotiation on `Accept` (RFC 9110 §12.5.1), between the representations this server
 * offers: q-values, media ranges (`text/*`, `*\/*`), and the most specific range winning for each
 * offer. Linear in the header, bounded in the ranges it reads; never throws.
 */

export const JSON_TYPE = "application/json";
export const EVENT_STREAM_TYPE = "text/event-stream";

/** A header longer than this many ranges is read up to them (no client needs more). */
const MAX_RANGES = 64;

interface Range {
  type: string;
  subtype: string;
  q: number;
}

function parseAccept(header: string): Range[] {
  const ranges: Range[] = [];
  for (const part of header.split(",", MAX_RANGES)) {
    const [mediaRange = "", ...params] = part.split(";");
    const slash = mediaRange.indexOf("/");
    if (slash < 0) continue;
    const type = mediaRange.slice(0, slash).trim().toLowerCase();
    const subtype = mediaRange.slice(slash + 1).trim().toLowerCase();
    if (!type || !subtype) continue;
    let q = 1;
    for (const param of params) {
      const [name = "", value = ""] = param.split("=", 2);
      if (name.trim().toLowerCase() !== "q") continue;
      const parsed = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(value.trim()) ? Number(value.trim()) : Number.NaN;
      q = Number.isNaN(parsed) ? 1 : parsed;
      break;
    }
    ranges.push({ type, subtype, q });
  }
  return ranges;
}

/** The quality the client gives a media type, and how specific the range that says so is (-1: none). */
function qualityOf(mediaType: string, ranges: readonly Range[]): { q: number; specificity: number } {
  const [type, subtype] = mediaType.split("/") as [string, string];
  let best = { q: 0, specificity: -1 };
  for (const range of ranges) {
    const specificity =
      range.type === type && range.subtype === subtype ? 2 : range.type === type && range.subtype === "*" ? 1 : range.type === "*" && range.subtype === "*" ? 0 : -1;
    if (specificity > best.specificity) best = { q: range.q, specificity };
  }
  return best;
}

/**
 * The offer the client prefers: the highest q wins; at equal q, the one named by the more specific
 * range (`text/event-stream` beats `*\/*`); at a full tie, the earlier offer. No `Accept` (or an empty
 * one) accepts anything: the first offer. Undefined when the client accepts none of them.
 */
export function negotiate(accept: string | null | undefined, offers: readonly string[]): string | undefined {
  if (!accept?.trim()) return offers[0];
  const ranges = parseAccept(accept);
  if (ranges.length === 0) return offers[0];
  let chosen: { offer: string; q: number; specificity: number } | undefined;
  for (const offer of offers) {
    const { q, specificity } = qualityOf(offer, ranges);
    if (q <= 0) continue;
    if (!chosen || q > chosen.q || (q === chosen.q && specificity > chosen.specificity)) chosen = { offer, q, specificity };
  }
  return chosen?.offer;
}

/**
 * Whether `GET /tasks/:id/events` should answer as Server-Sent Events: the client prefers
 * `text/event-stream` to `application/json`. A client that accepts neither gets JSON.
 */
export function wantsEventStream(accept: string | null | undefined): boolean {
  return negotiate(accept, [JSON_TYPE, EVENT_STREAM_TYPE]) === EVENT_STREAM_TYPE;
}
