/**
 * The console's type-check sees src/protocol through the client's type imports, and
 * src/protocol/limits.ts (server-side validation, never bundled into the page) measures bytes with
 * Node's `Buffer`. Declared here, for the type-check only, so that this program needs no Node
 * types (which would let browser code use `process` or `Buffer` unnoticed).
 */
declare const Buffer: { byteLength(text: string, encoding: "utf8"): number };
