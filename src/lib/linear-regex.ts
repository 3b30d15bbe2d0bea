/**
 * JSON Schema `pattern`s checked in linear time. The patterns come from configuration (an agent's
 * `output_schema`) or from an MCP server's tool schemas, and the strings from a model — which a
 * user steers. JavaScript's backtracking engine takes exponential time on patterns such as
 * `^(a+)+$`: one model answer of 28 characters held the event loop 688 ms (32: ~11 s). RE2 (here its
 * JavaScript port, RE2JS) matches in time linear in the string, whatever the pattern.
 *
 * A pattern is ECMAScript's (JSON Schema says so), read with the `u` flag. It is translated to RE2's
 * syntax where the two differ — `\s`/`\S` and `.` mean what they mean in JavaScript (Unicode spaces;
 * `.` stops at `\r`, U+2028 and U+2029 too), `\uXXXX` (surrogate pairs joined), `\u{…}`, long
 * `\p{…}` names, `[\s\S]` — and matched unanchored, on code points. What RE2 cannot do at all —
 * lookaround, backreferences, repeat counts over 1,000, a `\S` inside a class — does not compile
 * here (`compileLinearRegex` throws): the caller decides (JavaScript's engine, with a warning).
 */
import { RE2JS } from "re2js";

export interface LinearRegex {
  test(text: string): boolean;
  /** `/pattern/u`, as a RegExp says itself (Ajv keys its compiled patterns by it). */
  toString(): string;
}

/** ECMAScript's `\s` (WhiteSpace and LineTerminator), as class members in RE2's syntax. */
const SPACE_MEMBERS = "\\t\\n\\x{0B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}";
/** ECMAScript's `.` without the `s` flag: anything but a line terminator. */
const DOT = "[^\\n\\r\\x{2028}\\x{2029}]";
/** Long Unicode property names (ECMAScript's) RE2 knows by their short ones. */
const CATEGORY_ALIASES: Record<string, string> = {
  Letter: "L", Cased_Letter: "LC", Uppercase_Letter: "Lu", Lowercase_Letter: "Ll", Titlecase_Letter: "Lt", Modifier_Letter: "Lm", Other_Letter: "Lo",
  Mark: "M", Combining_Mark: "M", Nonspacing_Mark: "Mn", Spacing_Mark: "Mc", Enclosing_Mark: "Me",
  Number: "N", Decimal_Number: "Nd", digit: "Nd", Letter_Number: "Nl", Other_Number: "No",
  Punctuation: "P", punct: "P", Connector_Punctuation: "Pc", Dash_Punctuation: "Pd", Open_Punctuation: "Ps", Close_Punctuation: "Pe",
  Initial_Punctuation: "Pi", Final_Punctuation: "Pf", Other_Punctuation: "Po",
  Symbol: "S", Math_Symbol: "Sm", Currency_Symbol: "Sc", Modifier_Symbol: "Sk", Other_Symbol: "So",
  Separator: "Z", Space_Separator: "Zs", Line_Separator: "Zl", Paragraph_Separator: "Zp",
  Other: "C", Control: "Cc", cntrl: "Cc", Format: "Cf", Surrogate: "Cs", Private_Use: "Co", Unassigned: "Cn",
};

/** A pattern RE2 cannot match as ECMAScript would. */
export class NotLinearError extends Error {}

/** ECMAScript (`u`) pattern → RE2 syntax with the same meaning; throws `NotLinearError` where there is none. */
export function toRe2Syntax(pattern: string): string {
  let out = "";
  let inClass = false;
  let index = 0;
  const hex = (codePoint: number) => `\\x{${codePoint.toString(16).toUpperCase()}}`;
  while (index < pattern.length) {
    const char = pattern[index]!;
    if (char === "[" && !inClass) {
      // `[\s\S]` and its kin: any character at all.
      const any = /^\[(\\s\\S|\\S\\s|\\d\\D|\\D\\d|\\w\\W|\\W\\w)\]/.exec(pattern.slice(index));
      if (any) {
        out += "(?s:.)";
        index += any[0].length;
        continue;
      }
      inClass = true;
      out += char;
      index++;
      if (pattern[index] === "^") {
        out += "^";
        index++;
      }
      // A `]` first in a class is a literal in RE2, the end of an empty class in ECMAScript.
      if (pattern[index] === "]") throw new NotLinearError("an empty class ([] or [^])");
      continue;
    }
    if (char === "[" && inClass) {
      // A literal in an ECMAScript class; RE2 would read `[:alpha:]` as a POSIX class.
      out += "\\[";
      index++;
      continue;
    }
    if (char === "(" && !inClass && pattern[index + 1] === "?" && /^[a-zA-Z-]$/.test(pattern[index + 2] ?? "")) {
      // `(?s:…)`, `(?m:…)`, `(?i:…)`: ECMAScript's modifiers change what `.`, `^`, `$` mean, which
      // the translation of `.` (and RE2's `$`) does not follow.
      throw new NotLinearError("a modifier group ((?s:…), (?m:…), (?i:…))");
    }
    if (char === "]" && inClass) {
      inClass = false;
      out += char;
      index++;
      continue;
    }
    if (char === "." && !inClass) {
      out += DOT;
      index++;
      continue;
    }
    if (char !== "\\") {
      out += char;
      index++;
      continue;
    }
    const next = pattern[index + 1];
    if (next === "s") {
      out += inClass ? SPACE_MEMBERS : `[${SPACE_MEMBERS}]`;
      index += 2;
    } else if (next === "S") {
      if (inClass) throw new NotLinearError("\\S inside a character class");
      out += `[^${SPACE_MEMBERS}]`;
      index += 2;
    } else if (next === "u" && pattern[index + 2] === "{") {
      const end = pattern.indexOf("}", index + 3);
      out += hex(Number.parseInt(pattern.slice(index + 3, end), 16));
      index = end + 1;
    } else if (next === "u") {
      const unit = Number.parseInt(pattern.slice(index + 2, index + 6), 16);
      const low = /^\\u([0-9A-Fa-f]{4})/.exec(pattern.slice(index + 6));
      const lowUnit = low ? Number.parseInt(low[1]!, 16) : -1;
      if (unit >= 0xd800 && unit <= 0xdbff && lowUnit >= 0xdc00 && lowUnit <= 0xdfff) {
        out += hex(0x10000 + ((unit - 0xd800) << 10) + (lowUnit - 0xdc00));
        index += 12;
      } else {
        if (unit >= 0xd800 && unit <= 0xdfff) throw new NotLinearError("a lone surrogate escape");
        out += hex(unit);
        index += 6;
      }
    } else if ((next === "p" || next === "P") && pattern[index + 2] === "{") {
      const end = pattern.indexOf("}", index + 3);
      const body = pattern.slice(index + 3, end);
      const [key, value] = body.includes("=") ? (body.split("=") as [string, string]) : [undefined, body];
      const name = key === "Script" || key === "sc" || key === "General_Category" || key === "gc" || key === undefined ? (CATEGORY_ALIASES[value] ?? value) : undefined;
      if (name === undefined) throw new NotLinearError(`the property \\${next}{${body}}`);
      out += `\\${next}{${name}}`;
      index = end + 1;
    } else if (next === "c" || (next !== undefined && next >= "1" && next <= "9") || next === "k") {
      throw new NotLinearError(next === "c" ? "a control escape (\\c)" : "a backreference");
    } else {
      out += char + (next ?? "");
      index += 2;
    }
  }
  return out;
}

/**
 * Compiles a pattern for linear-time matching. Throws a plain Error when the pattern is not a
 * valid ECMAScript one, and `NotLinearError` when it is but RE2 cannot match it as ECMAScript does.
 */
export function compileLinearRegex(pattern: string): LinearRegex {
  new RegExp(pattern, "u"); // not ECMAScript (`(?i)`, …): the caller reports it as invalid
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(toRe2Syntax(pattern));
  } catch (error) {
    if (error instanceof NotLinearError) throw error;
    throw new NotLinearError(error instanceof Error ? error.message : String(error));
  }
  return { test: (text) => compiled.matcher(text).find(), toString: () => `/${pattern}/u` };
}

/**
 * The pattern in linear time when RE2 can take it, else JavaScript's own engine (backtracking),
 * with `onBacktracking` told why. Throws only for a pattern that is not valid ECMAScript.
 */
export function compilePattern(pattern: string, onBacktracking: (reason: string) => void): LinearRegex {
  try {
    return compileLinearRegex(pattern);
  } catch (error) {
    if (!(error instanceof NotLinearError)) throw error;
    onBacktracking(error.message);
    const native = new RegExp(pattern, "u");
    return { test: (text) => native.test(text), toString: () => native.toString() };
  }
}
