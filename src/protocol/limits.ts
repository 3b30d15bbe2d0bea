/**
 * Bounds on what a client can store and on what one response can carry. A task is serialised on
 * every read of it (`GET /tasks/:id`, lists, resync frames): what a client stores must stay cheap
 * to serialise forever, so it is bounded at the edge, before anything is stored.
 *
 * Every check here is linear in its input, iterative (never recursive: hostile nesting cannot
 * overflow the stack) and stops at the first violation.
 */

/** `input`: the task's prompt. */
export const MAX_INPUT_CHARS = 100_000;
/** `agent`: an agent's name. */
export const MAX_AGENT_CHARS = 64;

/**
 * Text a person or client sends (an input, a message, an answer) must be valid Unicode: a lone
 * UTF-16 surrogate (`"\ud800"` in JSON) cannot be stored as UTF-8 — SQLite and PostgreSQL would
 * keep U+FFFD instead, and the task would not have the input it was given.
 */
export function isValidText(text: string): boolean {
  return text.isWellFormed();
}
export const INVALID_TEXT = "is not valid Unicode: it has a lone surrogate (a \\ud800–\\udfff escape without its pair)";

/**
 * `metadata`: a JSON object the client attaches to its task and gets back as it sent it. Stripe
 * and OpenAI keep metadata flat and small (50 / 16 string keys, values ≤ 500 / 512 chars); this
 * allows some nesting and any JSON value, within the same order of size.
 */
export const METADATA_LIMITS = {
  /** Serialised as JSON, in UTF-8 bytes. */
  maxBytes: 16 * 1024,
  /** Nesting: `{"a":1}` is depth 1, `{"a":{"b":[1]}}` depth 3. */
  maxDepth: 8,
  /** Object keys and array items, counted at every level. */
  maxEntries: 256,
  maxKeyChars: 64,
  maxStringChars: 1024,
} as const;

/**
 * The raw JSON of a `POST /tasks` body, checked before it is parsed: parsing itself is slow for
 * hostile shapes (a 1 MiB body of `[` nests 500,000 deep and costs ~25 ms to parse; 100,000 keys
 * ~12 ms). The body is one object (depth 1) holding `metadata`; a token is a `,` or `:` outside
 * strings, and a valid body has at most two per metadata entry and a few of its own. Twice that
 * room: a body just over a metadata limit is parsed (cheap at this size) and told which limit,
 * where; one far over it is refused from its text.
 */
export const BODY_LIMITS = {
  maxDepth: 2 * (1 + METADATA_LIMITS.maxDepth),
  maxTokens: 2 * (2 * METADATA_LIMITS.maxEntries + 16),
  hint: `metadata: depth ≤ ${METADATA_LIMITS.maxDepth}, at most ${METADATA_LIMITS.maxEntries} keys and array items`,
} as const;

/**
 * A page of `GET /tasks` stops adding tasks once it holds this many bytes of JSON (it always holds
 * at least one); `next_cursor` continues after the last task it holds. Without it, a page of 100
 * tasks with 100,000-char inputs is ~35 MB and ~100 ms of `JSON.stringify`.
 */
export const LIST_MAX_BYTES = 1024 * 1024;

/**
 * Checks the nesting depth and the number of `,`/`:` tokens of JSON text without parsing it.
 * Returns the violated limit's description, or undefined. Malformed JSON passes (the parser
 * reports it); only the structure outside string literals counts.
 */
export function scanJsonStructure(text: string, limits: { maxDepth: number; maxTokens: number }): string | undefined {
  let depth = 0;
  let tokens = 0;
  const length = text.length;
  for (let index = 0; index < length; index++) {
    const code = text.charCodeAt(index);
    if (code === 34 /* " */) {
      // Jump to the closing quote: the next `"` preceded by an even number of backslashes.
      let end = index;
      for (;;) {
        end = text.indexOf('"', end + 1);
        if (end < 0) return undefined; // unterminated: the parser reports it
        let backslash = end - 1;
        while (text.charCodeAt(backslash) === 92 /* \ */) backslash--;
        if ((end - 1 - backslash) % 2 === 0) break;
      }
      index = end;
    } else if (code === 123 /* { */ || code === 91 /* [ */) {
      if (++depth > limits.maxDepth) return `nests deeper than ${limits.maxDepth} levels`;
    } else if (code === 125 /* } */ || code === 93 /* ] */) {
      depth--;
    } else if (code === 44 /* , */ || code === 58 /* : */) {
      if (++tokens > limits.maxTokens) return `has more than ${limits.maxTokens} values and keys`;
    }
  }
  return undefined;
}

/**
 * A model's tool-call arguments that nest deeper than this are not parsed for use: the call fails
 * (`invalid_arguments`), its `tool_call` shows the text as it came, and the next request replays
 * `{}`. A provider's 200 KB of `[[[…]]]` parsed fine, but writing its frame back as JSON overflowed
 * the stack — the event's sequence number was taken, the task's end was refused for the gap, and
 * the task stayed `running` for good.
 */
export const MAX_ARGUMENT_DEPTH = 256;

/** Whether JSON text nests deeper than `maxDepth` (text shorter than that cannot: not scanned). */
export function nestsTooDeep(text: string, maxDepth = MAX_ARGUMENT_DEPTH): boolean {
  return text.length > maxDepth && scanJsonStructure(text, { maxDepth, maxTokens: Number.POSITIVE_INFINITY }) !== undefined;
}

export interface MetadataIssue {
  /** Where, from the metadata object: `["a", "b", 3]`; empty for the object itself. */
  path: (string | number)[];
  message: string;
}

interface Pending {
  value: unknown;
  depth: number;
  key: string | number;
  parent: Pending | undefined;
}

function pathOf(entry: Pending | undefined): (string | number)[] {
  const path: (string | number)[] = [];
  for (let at = entry; at?.parent; at = at.parent) path.unshift(at.key);
  return path;
}

/**
 * Checks parsed metadata against METADATA_LIMITS, iteratively (an explicit stack, so no depth of
 * nesting can overflow the call stack), stopping at the first violation or past maxEntries.
 */
export function checkMetadata(metadata: Record<string, unknown>, limits = METADATA_LIMITS): MetadataIssue | undefined {
  const stack: Pending[] = [{ value: metadata, depth: 1, key: "", parent: undefined }];
  let entries = 0;
  while (stack.length > 0) {
    const entry = stack.pop()!;
    const { value, depth } = entry;
    if (typeof value === "string") {
      if (value.length > limits.maxStringChars) return { path: pathOf(entry), message: `string values are at most ${limits.maxStringChars} chars` };
      continue;
    }
    if (typeof value === "number") {
      if (!Number.isFinite(value)) return { path: pathOf(entry), message: "numbers must be finite" };
      continue;
    }
    if (value === null || typeof value !== "object") continue; // boolean, null
    if (depth > limits.maxDepth) return { path: pathOf(entry), message: `nests at most ${limits.maxDepth} levels deep` };
    const tooMany = () => ({ path: pathOf(entry), message: `at most ${limits.maxEntries} keys and array items in all` });
    if (Array.isArray(value)) {
      entries += value.length;
      if (entries > limits.maxEntries) return tooMany();
      // Pushed last to first: popped in document order, so the issue named is the first one.
      for (let index = value.length - 1; index >= 0; index--) stack.push({ value: value[index], depth: depth + 1, key: index, parent: entry });
      continue;
    }
    const keys = Object.keys(value);
    entries += keys.length;
    if (entries > limits.maxEntries) return tooMany();
    for (const key of keys) {
      if (key.length > limits.maxKeyChars) return { path: pathOf(entry), message: `keys are at most ${limits.maxKeyChars} chars` };
    }
    for (let index = keys.length - 1; index >= 0; index--) {
      const key = keys[index]!;
      stack.push({ value: (value as Record<string, unknown>)[key], depth: depth + 1, key, parent: entry });
    }
  }
  // Bounded by now (≤ maxEntries values of ≤ maxStringChars each, ≤ maxDepth deep): cheap to serialise.
  const bytes = Buffer.byteLength(JSON.stringify(metadata), "utf8");
  if (bytes > limits.maxBytes) return { path: [], message: `at most ${limits.maxBytes} bytes as JSON (got ${bytes})` };
  return undefined;
}
