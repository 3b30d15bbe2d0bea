/**
 * Structured final answers: an agent's `output_schema` (JSON Schema) compiled once at start-up, and
 * the check of the model's final text against it.
 *
 * A small validator of our own rather than zod's `z.fromJSONSchema` (zod 4.6.7, "semi-experimental"):
 * that one fills a missing required property from its `default`, reports a failed `anyOf` as a bare
 * "Invalid input", and keeps unknown keywords as metadata instead of refusing them. Here the model
 * gets a message it can act on, and a schema never means less than it says.
 *
 * Supported keywords (draft 2020-12 meaning):
 * - any schema: `type` (a name or a list of `object`, `array`, `string`, `number`, `integer`,
 *   `boolean`, `null`), `enum`, `const`, `anyOf`, `oneOf`, `allOf`, `$ref` (only `#/$defs/<name>` or
 *   `#/definitions/<name>`, recursion allowed), `true` / `false` as schemas;
 * - objects: `properties`, `required`, `additionalProperties` (boolean or schema);
 * - arrays: `items` (one schema for every item), `minItems`, `maxItems`;
 * - strings: `minLength`, `maxLength` (in code points), `pattern` (ECMAScript, unanchored; matched
 *   in linear time by RE2 when it can be, src/lib/linear-regex.ts — else by JavaScript's engine,
 *   listed in `backtracking` for a warning at start-up);
 * - numbers: `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numbers), `multipleOf`;
 * - only at the root: `$defs`, `definitions`, `$schema`, `$id`;
 * - annotations, accepted and not checked: `title`, `description`, `default`, `examples`,
 *   `$comment`, `deprecated`, `readOnly`, `writeOnly`, `format` (an annotation in 2020-12).
 * Any other keyword (`if`, `not`, `patternProperties`, `prefixItems`, `uniqueItems`, …) is refused by
 * `compileOutputSchema` — i.e. at start-up, as a config error — never silently ignored; so is a
 * keyword with a value of the wrong shape, a `$ref` that does not resolve, and a `$ref` cycle that
 * never descends into the value (`a` is `anyOf: [{$ref: a}, …]`).
 */

import { MAX_ARGUMENT_DEPTH, nestsTooDeep } from "../protocol/limits.ts";
import { compilePattern, type LinearRegex } from "../lib/linear-regex.ts";

type JsonSchema = boolean | Record<string, unknown>;

export type OutputCheck = { ok: true; value: unknown; json: string } | { ok: false; message: string };

export interface OutputValidator {
  /** The schema as configured (a plain JSON copy): what a provider's structured-output mode is sent. */
  schema: Record<string, unknown>;
  /** Checks the model's final text: optional ```json fence, then JSON, then the schema. */
  check(text: string): OutputCheck;
  /** Patterns RE2 cannot match as ECMAScript does (lookaround, backreferences…): JavaScript's engine matches them. */
  backtracking: { at: string; pattern: string; reason: string }[];
}

/** Longest message `check` returns; the model reads it as an observation. */
export const MAX_OUTPUT_MESSAGE_CHARS = 1_000;

const TYPES = new Set(["object", "array", "string", "number", "integer", "boolean", "null"]);
const ANNOTATIONS = new Set(["title", "description", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly", "format"]);
const ROOT_ONLY = new Set(["$defs", "definitions", "$schema", "$id"]);
const KEYWORDS = new Set([
  "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref",
  "properties", "required", "additionalProperties",
  "items", "minItems", "maxItems",
  "minLength", "maxLength", "pattern",
  "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
]);
const SUPPORTED_LIST = [...KEYWORDS, ...ROOT_ONLY, ...ANNOTATIONS].join(", ");
/** Deeper values than this are refused rather than risking the stack. */
const MAX_DEPTH = 200;
/** Errors collected before validation stops looking. */
const MAX_ERRORS = 20;

/**
 * Compiles an `output_schema`. Throws an Error with a one-line message when it is not a usable JSON
 * Schema (not an object, an unsupported keyword, a malformed value, an unresolved `$ref`…).
 * @example
 * const validator = compileOutputSchema({ type: "object", required: ["answer"], properties: { answer: { type: "string" } } });
 * validator.check('```json\n{"answer":"42"}\n```'); // { ok: true, value: { answer: "42" }, json: '{"answer":"42"}' }
 */
export function compileOutputSchema(schema: unknown): OutputValidator {
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    throw new Error("not a usable JSON Schema: expected an object");
  }
  let copy: Record<string, unknown>;
  try {
    copy = JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
  } catch {
    throw new Error("not a usable JSON Schema: not plain JSON");
  }
  const compiler = new Compiler(copy);
  compiler.compile(copy, "#", true);
  compiler.refuseRefCycles();
  const root = copy;
  return {
    schema: copy,
    backtracking: compiler.backtracking,
    check(text: string): OutputCheck {
      const body = stripJsonFence(text);
      // The check walks the value recursively (and the answer's frame writes it back as JSON): a
      // value nested 100,000 deep overflowed the stack and failed the task as `internal`.
      if (nestsTooDeep(body)) return { ok: false, message: `The final answer nests deeper than ${MAX_ARGUMENT_DEPTH} levels.` };
      let value: unknown;
      try {
        value = JSON.parse(body);
      } catch (error) {
        const reason = error instanceof Error ? error.message : String(error);
        return {
          ok: false,
          // For people (it becomes the task's error when retries run out); the model's instruction is outputFeedback's.
          message: truncate(`The final answer is not valid JSON (${reason}).`),
        };
      }
      const errors: ValidationError[] = [];
      validate(root, value, "$", { root, errors, depth: 0, patterns: compiler.patterns });
      if (errors.length === 0) return { ok: true, value, json: JSON.stringify(value) };
      const details = errors.map((error) => `at ${error.path}: ${error.message}`).join("; ");
      return { ok: false, message: truncate(`The final answer does not match the output schema: ${details}.`) };
    },
  };
}

/** The text inside a surrounding Markdown code fence (```json … ``` or ``` … ```), else the text itself. */
export function stripJsonFence(text: string): string {
  const trimmed = text.trim();
  const fenced = /^```[ \t]*(?:json|JSON)?[ \t]*\r?\n([\s\S]*?)\r?\n?[ \t]*```$/.exec(trimmed);
  return fenced ? fenced[1]!.trim() : trimmed;
}

// ── compile-time checks ─────────────────────────────────────────────────────────────────────────

class Compiler {
  /** For each `$ref` target, the targets it reaches without descending into the value. */
  private readonly shallowRefs = new Map<string, Set<string>>();
  /** Every `pattern` of the schema, compiled once. */
  readonly patterns = new Map<string, LinearRegex>();
  readonly backtracking: { at: string; pattern: string; reason: string }[] = [];

  constructor(private readonly root: Record<string, unknown>) {}

  compile(schema: unknown, at: string, isRoot = false): void {
    if (typeof schema === "boolean") return;
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) fail(at, "a schema must be an object or a boolean");
    const node = schema as Record<string, unknown>;
    for (const key of Object.keys(node)) {
      if (ROOT_ONLY.has(key)) {
        if (!isRoot) fail(at, `'${key}' is supported only at the root`);
      } else if (!KEYWORDS.has(key) && !ANNOTATIONS.has(key)) {
        fail(at, `unsupported keyword '${key}' (supported: ${SUPPORTED_LIST})`);
      }
    }
    if (isRoot) {
      for (const defsKey of ["$defs", "definitions"]) {
        if (node[defsKey] === undefined) continue;
        const defs = objectValue(node[defsKey], `${at}/${defsKey}`, "must be an object of schemas");
        for (const [name, sub] of Object.entries(defs)) this.compile(sub, `${at}/${defsKey}/${escapePointer(name)}`);
      }
    }
    if (node.type !== undefined) {
      const types = Array.isArray(node.type) ? node.type : [node.type];
      if (types.length === 0 || !types.every((type) => typeof type === "string" && TYPES.has(type))) {
        fail(`${at}/type`, `must be one of ${[...TYPES].join(", ")} or a non-empty list of them`);
      }
    }
    if (node.enum !== undefined && !Array.isArray(node.enum)) fail(`${at}/enum`, "must be an array");
    for (const key of ["anyOf", "oneOf", "allOf"]) {
      if (node[key] === undefined) continue;
      if (!Array.isArray(node[key]) || (node[key] as unknown[]).length === 0) fail(`${at}/${key}`, "must be a non-empty array of schemas");
      (node[key] as unknown[]).forEach((sub, index) => this.compile(sub, `${at}/${key}/${index}`));
    }
    if (node.$ref !== undefined) {
      if (typeof node.$ref !== "string") fail(`${at}/$ref`, "must be a string");
      if (resolveRef(this.root, node.$ref) === undefined) {
        fail(`${at}/$ref`, `'${node.$ref}' does not resolve (only '#/$defs/<name>' and '#/definitions/<name>' are supported)`);
      }
    }
    if (node.properties !== undefined) {
      const properties = objectValue(node.properties, `${at}/properties`, "must be an object of schemas");
      for (const [name, sub] of Object.entries(properties)) this.compile(sub, `${at}/properties/${escapePointer(name)}`);
    }
    if (node.required !== undefined) {
      if (!Array.isArray(node.required) || !node.required.every((name) => typeof name === "string")) {
        fail(`${at}/required`, "must be an array of property names");
      }
    }
    if (node.additionalProperties !== undefined) this.compile(node.additionalProperties, `${at}/additionalProperties`);
    if (node.items !== undefined) {
      if (Array.isArray(node.items)) fail(`${at}/items`, "must be one schema (tuple 'items' arrays are not supported)");
      this.compile(node.items, `${at}/items`);
    }
    for (const key of ["minItems", "maxItems", "minLength", "maxLength"]) {
      const value = node[key];
      if (value !== undefined && !(Number.isInteger(value) && (value as number) >= 0)) fail(`${at}/${key}`, "must be a non-negative integer");
    }
    for (const key of ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"]) {
      if (node[key] !== undefined && typeof node[key] !== "number") fail(`${at}/${key}`, "must be a number");
    }
    if (node.multipleOf !== undefined && !(typeof node.multipleOf === "number" && node.multipleOf > 0)) {
      fail(`${at}/multipleOf`, "must be a number greater than 0");
    }
    if (node.pattern !== undefined) {
      if (typeof node.pattern !== "string") fail(`${at}/pattern`, "must be a string");
      try {
        const pattern = node.pattern as string;
        if (!this.patterns.has(pattern)) {
          this.patterns.set(pattern, compilePattern(pattern, (reason) => this.backtracking.push({ at: `${at}/pattern`, pattern, reason })));
        }
      } catch (error) {
        fail(`${at}/pattern`, `is not a valid regular expression (${error instanceof Error ? error.message : String(error)})`);
      }
    }
  }

  /** Refuses `$ref` chains (through `$ref`, `anyOf`, `oneOf`, `allOf`) that come back to where they started. */
  refuseRefCycles(): void {
    const targets = (node: unknown, into: Set<string>): void => {
      if (typeof node !== "object" || node === null) return;
      const schema = node as Record<string, unknown>;
      if (typeof schema.$ref === "string") into.add(schema.$ref);
      for (const key of ["anyOf", "oneOf", "allOf"]) for (const sub of (schema[key] as unknown[] | undefined) ?? []) targets(sub, into);
    };
    const edges = (ref: string): Set<string> => {
      let found = this.shallowRefs.get(ref);
      if (!found) {
        found = new Set();
        this.shallowRefs.set(ref, found);
        targets(resolveRef(this.root, ref), found);
      }
      return found;
    };
    const refs: string[] = [];
    for (const defsKey of ["$defs", "definitions"]) {
      const defs = this.root[defsKey];
      if (isObject(defs)) for (const name of Object.keys(defs)) refs.push(`#/${defsKey}/${escapePointer(name)}`);
    }
    for (const start of refs) {
      const seen = new Set<string>();
      const stack = [...edges(start)];
      while (stack.length > 0) {
        const ref = stack.pop()!;
        if (ref === start) fail("#", `'$ref' cycle through '${start}' never descends into the value`);
        if (seen.has(ref)) continue;
        seen.add(ref);
        stack.push(...edges(ref));
      }
    }
  }
}

function fail(at: string, message: string): never {
  throw new Error(`not a usable JSON Schema: ${at}: ${message}`);
}

function objectValue(value: unknown, at: string, message: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) fail(at, message);
  return value as Record<string, unknown>;
}

function resolveRef(root: Record<string, unknown>, ref: string): JsonSchema | undefined {
  const match = /^#\/(\$defs|definitions)\/([^/]+)$/.exec(ref);
  if (!match) return undefined;
  const defs = root[match[1]!];
  if (typeof defs !== "object" || defs === null || Array.isArray(defs)) return undefined;
  const name = match[2]!.replace(/~1/g, "/").replace(/~0/g, "~");
  if (!Object.hasOwn(defs, name)) return undefined;
  const target = (defs as Record<string, unknown>)[name];
  return typeof target === "boolean" || (typeof target === "object" && target !== null && !Array.isArray(target))
    ? (target as JsonSchema)
    : undefined;
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, "~0").replace(/\//g, "~1");
}

// ── validation ──────────────────────────────────────────────────────────────────────────────────

interface ValidationError {
  path: string;
  message: string;
}

interface ValidationContext {
  root: Record<string, unknown>;
  errors: ValidationError[];
  depth: number;
  /** The schema's patterns, compiled (linear-time matching). */
  patterns: ReadonlyMap<string, LinearRegex>;
}

/** Adds the value's errors against `schema` to `context.errors` (up to MAX_ERRORS). */
function validate(schema: JsonSchema, value: unknown, path: string, context: ValidationContext): void {
  const { errors } = context;
  if (errors.length >= MAX_ERRORS) return;
  const report = (message: string, at = path) => {
    if (errors.length < MAX_ERRORS) errors.push({ path: at, message });
  };
  if (schema === true) return;
  if (schema === false) return report("no value is allowed here");
  if (context.depth > MAX_DEPTH) return report(`nested more than ${MAX_DEPTH} levels deep`);
  const inner = { ...context, depth: context.depth + 1 };

  if (typeof schema.$ref === "string") validate(resolveRef(context.root, schema.$ref)!, value, path, inner);

  if (schema.type !== undefined) {
    const types = (Array.isArray(schema.type) ? schema.type : [schema.type]) as string[];
    if (!types.some((type) => hasType(value, type))) {
      // A wrong type makes every other keyword's complaint noise.
      return report(`expected ${types.join(" or ")}, got ${describe(value)}`);
    }
  }
  if (schema.const !== undefined && !jsonEqual(value, schema.const)) report(`must be ${preview(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.some((option) => jsonEqual(value, option))) {
    report(`must be one of ${schema.enum.map(preview).join(", ")}; got ${preview(value)}`);
  }

  if (Array.isArray(schema.allOf)) for (const sub of schema.allOf as JsonSchema[]) validate(sub, value, path, inner);
  if (Array.isArray(schema.anyOf)) {
    const failures = alternatives(schema.anyOf as JsonSchema[], value, path, inner);
    if (failures.every((failure) => failure.length > 0)) {
      report(`matches none of the ${failures.length} alternatives (anyOf): ${summarise(failures, path)}`);
    }
  }
  if (Array.isArray(schema.oneOf)) {
    const failures = alternatives(schema.oneOf as JsonSchema[], value, path, inner);
    const matching = failures.filter((failure) => failure.length === 0).length;
    if (matching === 0) report(`matches none of the ${failures.length} alternatives (oneOf): ${summarise(failures, path)}`);
    else if (matching > 1) report(`matches ${matching} alternatives of oneOf; it must match exactly one`);
  }

  if (isObject(value)) {
    const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
    for (const name of (schema.required ?? []) as string[]) {
      if (!Object.hasOwn(value, name)) report(`missing required property ${JSON.stringify(name)}`);
    }
    const unexpected: string[] = [];
    for (const [name, item] of Object.entries(value)) {
      const at = childPath(path, name);
      if (Object.hasOwn(properties, name)) validate(properties[name]!, item, at, inner);
      else if (schema.additionalProperties === false) unexpected.push(name);
      else if (schema.additionalProperties !== undefined) validate(schema.additionalProperties as JsonSchema, item, at, inner);
    }
    if (unexpected.length > 0) {
      const allowed = Object.keys(properties);
      report(
        `unexpected ${unexpected.length === 1 ? "property" : "properties"} ${unexpected.map((name) => JSON.stringify(name)).join(", ")}` +
          (allowed.length > 0 ? ` (allowed: ${allowed.map((name) => JSON.stringify(name)).join(", ")})` : " (no properties allowed)"),
      );
    }
  }

  if (Array.isArray(value)) {
    if (typeof schema.minItems === "number" && value.length < schema.minItems) report(`expected at least ${schema.minItems} items, got ${value.length}`);
    if (typeof schema.maxItems === "number" && value.length > schema.maxItems) report(`expected at most ${schema.maxItems} items, got ${value.length}`);
    if (schema.items !== undefined) value.forEach((item, index) => validate(schema.items as JsonSchema, item, `${path}[${index}]`, inner));
  }

  if (typeof value === "string") {
    const length = [...value].length;
    if (typeof schema.minLength === "number" && length < schema.minLength) report(`expected at least ${schema.minLength} characters, got ${length}`);
    if (typeof schema.maxLength === "number" && length > schema.maxLength) report(`expected at most ${schema.maxLength} characters, got ${length}`);
    if (typeof schema.pattern === "string" && !context.patterns.get(schema.pattern)!.test(value)) {
      report(`must match the pattern ${JSON.stringify(schema.pattern)}`);
    }
  }

  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) report(`must be >= ${schema.minimum}, got ${value}`);
    if (typeof schema.maximum === "number" && value > schema.maximum) report(`must be <= ${schema.maximum}, got ${value}`);
    if (typeof schema.exclusiveMinimum === "number" && value <= schema.exclusiveMinimum) report(`must be > ${schema.exclusiveMinimum}, got ${value}`);
    if (typeof schema.exclusiveMaximum === "number" && value >= schema.exclusiveMaximum) report(`must be < ${schema.exclusiveMaximum}, got ${value}`);
    if (typeof schema.multipleOf === "number" && !isMultipleOf(value, schema.multipleOf)) report(`must be a multiple of ${schema.multipleOf}, got ${value}`);
  }
}

/** Each alternative's errors (empty when it matches), checked in isolation. */
function alternatives(options: readonly JsonSchema[], value: unknown, path: string, context: ValidationContext): ValidationError[][] {
  return options.map((option) => {
    const errors: ValidationError[] = [];
    validate(option, value, path, { ...context, errors });
    return errors;
  });
}

/** `[1] expected string, got number; [2] at $.a: missing …` — each alternative's first complaint. */
function summarise(failures: readonly ValidationError[][], path: string): string {
  return failures
    .map((errors, index) => {
      const first = errors[0];
      if (!first) return `[${index + 1}] matches`;
      return `[${index + 1}] ${first.path === path ? "" : `at ${first.path}: `}${first.message}`;
    })
    .join("; ");
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case "object":
      return isObject(value);
    case "array":
      return Array.isArray(value);
    case "string":
      return typeof value === "string";
    case "number":
      return typeof value === "number" && Number.isFinite(value);
    case "integer":
      return Number.isInteger(value);
    case "boolean":
      return typeof value === "boolean";
    case "null":
      return value === null;
    default:
      return false;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isMultipleOf(value: number, divisor: number): boolean {
  const quotient = value / divisor;
  return Number.isInteger(quotient) || Math.abs(quotient - Math.round(quotient)) < 1e-9;
}

/** JSON equality: same type and contents, object keys in any order. */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, index) => jsonEqual(item, b[index]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
  }
  return false;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? `integer ${value}` : `number ${value}`;
  if (typeof value === "string") return `string ${preview(value)}`;
  return typeof value;
}

function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

/** `$.a.b`, `$.list[2]`, or `$["odd key"]` for names that are not identifiers. */
function childPath(path: string, name: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? `${path}.${name}` : `${path}[${JSON.stringify(name)}]`;
}

function truncate(message: string): string {
  return message.length <= MAX_OUTPUT_MESSAGE_CHARS ? message : `${message.slice(0, MAX_OUTPUT_MESSAGE_CHARS - 1)}…`;
}
