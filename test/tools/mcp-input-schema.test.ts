/**
 * MCP tools' argument checks (src/tools/mcp/mcp-input-schema.ts): the tool's JSON Schema through
 * Ajv, its `pattern`s matched in linear time — a server's schema with a pattern that backtracks
 * exponentially cannot freeze agentkit on a model's arguments — and a pattern RE2 cannot take
 * still checked (by JavaScript's engine), said once.
 */
import { expect, test } from "bun:test";
import { compileArgumentsCheck, createToolSchemaValidator } from "../../src/tools/mcp/mcp-input-schema.ts";

test("a pattern that backtracks exponentially in JavaScript (^(a+)+$) is checked at once, right either way", () => {
  const warned: string[] = [];
  const validator = createToolSchemaValidator((pattern) => warned.push(pattern));
  const check = compileArgumentsCheck({ type: "object", properties: { text: { type: "string", pattern: "^(a+)+$" } }, required: ["text"] }, validator);
  // With a backtracking engine, 40 a's and a '!' take ~2^40 steps: this test would never end.
  expect(check({ text: `${"a".repeat(40)}!` })).toContain('must match pattern "^(a+)+$"');
  expect(check({ text: "a".repeat(40) })).toBeUndefined();
  expect(warned).toEqual([]);
});

test("a pattern with lookahead (RE2 cannot) is still checked, by JavaScript's engine, and said once", () => {
  const warned: string[] = [];
  const validator = createToolSchemaValidator((pattern) => warned.push(pattern));
  const schema = { type: "object", properties: { code: { type: "string", pattern: "^(?=[A-Z])\\w{3}$" } } };
  const check = compileArgumentsCheck(schema, validator);
  expect(check({ code: "Abc" })).toBeUndefined();
  expect(check({ code: "abc" })).toContain("must match pattern");
  compileArgumentsCheck(schema, validator);
  expect(warned).toEqual(["^(?=[A-Z])\\w{3}$"]);
});

test("patterns mean what they mean in ECMAScript: \\S refuses a no-break space, '.' stops at \\r", () => {
  const validator = createToolSchemaValidator(() => {});
  const check = compileArgumentsCheck({ type: "object", properties: { name: { type: "string", pattern: "^\\S+$" }, line: { type: "string", pattern: "^.+$" } } }, validator);
  expect(check({ name: "a\u00a0b" })).toContain("must match pattern");
  expect(check({ line: "one\rtwo" })).toContain("must match pattern");
  expect(check({ name: "ab", line: "one two" })).toBeUndefined();
});

test("formats are still checked (the SDK's Ajv settings)", () => {
  const check = compileArgumentsCheck({ type: "object", properties: { when: { type: "string", format: "date-time" } } }, createToolSchemaValidator(() => {}));
  expect(check({ when: "2026-11-27T03:00:00Z" })).toBeUndefined();
  expect(check({ when: "yesterday" })).toContain("must match format");
});

test("schemas with nested $ids, changed at every compile, leave nothing behind in Ajv; each is checked as it is now", () => {
  const validator = createToolSchemaValidator(() => {});
  const schema = (round: number, type: "string" | "number") => ({
    type: "object",
    properties: { a: { $id: `urn:agentkit-test:a${round}`, type }, b: { $id: `urn:agentkit-test:b${round}`, type: "string" } },
    required: ["a"],
  });
  validator.getValidator(schema(0, "string"));
  const baseline = validator.retained();
  for (let round = 1; round <= 300; round++) validator.getValidator(schema(round, "string"));
  expect(validator.retained()).toBe(baseline);
  // The same nested $id with another type: the new schema is the one checked.
  expect(validator.getValidator(schema(7, "number"))({ a: 1 }).valid).toBe(true);
  expect(validator.getValidator(schema(7, "number"))({ a: "x" }).valid).toBe(false);
  expect(validator.getValidator(schema(8, "string"))({ a: "x" }).valid).toBe(true);
});
