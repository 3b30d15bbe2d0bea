/**
 * JSON Schema `pattern`s checked in linear time. The patterns come from configuration (an agent's
 * `output_schema`) or from an MCP server's tool schemas, and the strings from a model — which a
 * user steers. JavaScript's backtracking engine takes exponential time on patterns such as
 * `^(a+)+$`: one model answer of 28 characters held the event loop 688 ms (32: ~11 s). RE2 (here its
 * JavaScript port, RE2JS) matches in time linear in the string, whatever the pattern.
 *
 * RE2 has no lookaround and no backreferences (they are what cannot be matched in linear time);
 * such a pattern does not compile here. JSON Schema's `\uXXXX` escapes are accepted (RE2 spells
 * them `\x{XXXX}`). Matching is unanchored, on code points, as ECMAScript's `u` flag does.
 */
import { RE2JS } from "re2js";

export interface LinearRegex {
  test(text: string): boolean;
}

/** `\uXXXX` (not itself escaped) as RE2's `\x{XXXX}`. */
function toRe2Syntax(pattern: string): string {
  return pattern.replace(/\\\\|\\u([0-9A-Fa-f]{4})/g, (whole, hex: string | undefined) => (hex === undefined ? whole : `\\x{${hex}}`));
}

/** Compiles a pattern; throws an Error saying what RE2 cannot do when it does not compile. */
export function compileLinearRegex(pattern: string): LinearRegex {
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(toRe2Syntax(pattern));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`${reason} (patterns are matched in linear time with RE2 syntax: no lookaround, no backreferences)`);
  }
  return { test: (text) => compiled.matcher(text).find() };
}
