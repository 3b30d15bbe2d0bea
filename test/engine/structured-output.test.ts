/**
 * Structured final answers: compiling an `output_schema` (refusing what we do not support) and
 * checking the model's final text against it with messages the model can act on.
 */
import { describe, expect, test } from "bun:test";
import { compileOutputSchema, MAX_OUTPUT_MESSAGE_CHARS, stripJsonFence } from "../../src/engine/structured-output.ts";
import { outputFeedback } from "../../src/engine/react.ts";

const person = compileOutputSchema({
  type: "object",
  required: ["name", "age", "tags"],
  additionalProperties: false,
  properties: {
    name: { type: "string", minLength: 1, description: "full name" },
    age: { type: "integer", minimum: 0, maximum: 150 },
    tags: { type: "array", items: { type: "string", enum: ["a", "b"] }, maxItems: 3 },
    email: { type: ["string", "null"], pattern: "^[^@]+@[^@]+$", format: "email" },
    kind: { const: "person" },
  },
});

function failure(result: ReturnType<typeof person.check>): string {
  if (result.ok) throw new Error(`expected a failure, got ${result.json}`);
  return result.message;
}

describe("check", () => {
  test("a valid answer: the value and its compact JSON", () => {
    const result = person.check('{ "name": "Ada", "age": 36, "tags": ["a"], "email": null }');
    expect(result).toEqual({ ok: true, value: { name: "Ada", age: 36, tags: ["a"], email: null }, json: '{"name":"Ada","age":36,"tags":["a"],"email":null}' });
  });

  test("a fenced answer (```json or bare ```) is unwrapped", () => {
    expect(person.check('```json\n{"name":"Ada","age":36,"tags":[]}\n```')).toMatchObject({ ok: true, value: { name: "Ada" } });
    expect(person.check('  ```\n{"name":"Ada","age":36,"tags":[]}\n```  ')).toMatchObject({ ok: true });
    expect(stripJsonFence("```JSON\n[1]\n```")).toBe("[1]");
    expect(stripJsonFence("plain")).toBe("plain");
  });

  test("not JSON: says so, for people (the task's error when retries run out); what to do is the model's feedback", () => {
    const message = failure(person.check("The answer is Ada, 36."));
    expect(message).toMatch(/^The final answer is not valid JSON \(.+\)\.$/);
    expect(message).not.toContain("Answer with");
    expect(outputFeedback(message)).toBe(`Your final answer does not match the required output schema: ${message}\nReply again with only the JSON value, matching the schema, no prose around it.`);
  });

  test("nested deeper than 256 levels: refused before it is parsed (100,000 levels overflowed the stack); 256 is checked", () => {
    const loose = compileOutputSchema({ type: "object", properties: { a: {} } });
    const nested = (levels: number) => `{"a":${"[".repeat(levels)}${"]".repeat(levels)}}`;
    expect(failure(loose.check(nested(100_000)))).toBe("The final answer nests deeper than 256 levels.");
    expect(loose.check(nested(255))).toMatchObject({ ok: true }); // 256 levels with the object around it
  });

  test("every problem with its path", () => {
    const message = failure(person.check('{"name":"","age":36.5,"tags":["a","c"],"extra":1,"email":"nope"}'));
    expect(message).toStartWith("The final answer does not match the output schema: ");
    expect(message).toContain("at $.name: expected at least 1 characters, got 0");
    expect(message).toContain("at $.age: expected integer, got number 36.5");
    expect(message).toContain('at $.tags[1]: must be one of "a", "b"; got "c"');
    expect(message).toContain('at $: unexpected property "extra" (allowed: "name", "age", "tags", "email", "kind")');
    expect(message).toContain('at $.email: must match the pattern "^[^@]+@[^@]+$"');
  });

  test("missing required properties, wrong root type, const, numeric bounds", () => {
    expect(failure(person.check('{"name":"Ada"}'))).toContain('at $: missing required property "age"; at $: missing required property "tags"');
    expect(failure(person.check("[1,2]"))).toContain("at $: expected object, got array");
    expect(failure(person.check('{"name":"A","age":200,"tags":[],"kind":"cat"}'))).toContain("at $.age: must be <= 150, got 200");
    expect(failure(person.check('{"name":"A","age":1,"tags":[],"kind":"cat"}'))).toContain('at $.kind: must be "person"');
  });

  test("anyOf and oneOf say what each alternative wanted", () => {
    const validator = compileOutputSchema({
      anyOf: [{ type: "string" }, { type: "object", required: ["value"], properties: { value: { type: "number" } } }],
    });
    expect(validator.check('"x"').ok).toBe(true);
    expect(validator.check('{"value":1}').ok).toBe(true);
    expect(failure(validator.check('{"value":"1"}'))).toContain(
      "at $: matches none of the 2 alternatives (anyOf): [1] expected string, got object; [2] at $.value: expected number, got string \"1\"",
    );
    const exclusive = compileOutputSchema({ oneOf: [{ type: "integer" }, { type: "number" }] });
    expect(exclusive.check("1.5").ok).toBe(true);
    expect(failure(exclusive.check("2"))).toContain("matches 2 alternatives of oneOf; it must match exactly one");
  });

  test("nested $defs, recursive $ref and additionalProperties as a schema", () => {
    const tree = compileOutputSchema({
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $ref: "#/$defs/node",
      $defs: {
        node: {
          type: "object",
          required: ["label"],
          properties: { label: { $ref: "#/$defs/label" }, children: { type: "array", items: { $ref: "#/$defs/node" } } },
          additionalProperties: { type: "number" },
        },
        label: { type: "string", maxLength: 5 },
      },
    });
    expect(tree.check('{"label":"root","weight":2,"children":[{"label":"a"},{"label":"b","children":[]}]}').ok).toBe(true);
    const message = failure(tree.check('{"label":"root","weight":"x","children":[{"label":"a"},{"children":[{"label":"toolong"}]}]}'));
    expect(message).toContain('at $.weight: expected number, got string "x"');
    expect(message).toContain('at $.children[1]: missing required property "label"');
    expect(message).toContain("at $.children[1].children[0].label: expected at most 5 characters, got 7");
    // draft-7 style definitions work too
    expect(compileOutputSchema({ definitions: { n: { type: "null" } }, items: { $ref: "#/definitions/n" } }).check("[null]").ok).toBe(true);
  });

  test("the message is capped at about 1 KB", () => {
    const validator = compileOutputSchema({ type: "array", items: { type: "string", enum: ["x".repeat(80)] } });
    const message = failure(validator.check(JSON.stringify(Array.from({ length: 50 }, () => "y".repeat(200)))));
    expect(message.length).toBeLessThanOrEqual(MAX_OUTPUT_MESSAGE_CHARS);
    expect(message).toEndWith("…");
  });

  test("the compiled schema is a plain copy", () => {
    const source = { type: "object", properties: { a: { type: "string" } } };
    const validator = compileOutputSchema(source);
    expect(validator.schema).toEqual(source);
    expect(validator.schema).not.toBe(source);
  });
});

describe("patterns are matched in linear time", () => {
  test("a pattern that backtracks exponentially in JavaScript (^(a+)+$) answers at once, right either way", () => {
    // With a backtracking engine, 40 a's and a '!' take ~2^40 steps: this test would never end.
    const validator = compileOutputSchema({ type: "object", properties: { a: { type: "string", pattern: "^(a+)+$" } } });
    const check = (text: string) => validator.check(JSON.stringify({ a: text })).ok;
    expect(check(`${"a".repeat(40)}!`)).toBe(false);
    expect(check("a".repeat(40))).toBe(true);
    expect(check(`${"a".repeat(100_000)}!`)).toBe(false);
  });

  test("RE2 matches as ECMAScript (u) does where their syntaxes differ: \\s, \\S, '.', surrogate pairs, \\u{…}, long \\p{…} names, [\\s\\S]", () => {
    const cases: [string, string][] = [
      ["^\\S+$", "a\u00a0b"],
      ["^\\s+$", "\u00a0\v\u2028\u3000\ufeff"],
      ["^[\\s,]+$", " ,\u00a0"],
      ["^.+$", "line1\rline2"],
      ["^.+$", "a\u2028b"],
      ["^.+$", "héllo 😀"],
      ["^\\uD83D\\uDE00$", "😀"],
      ["^\\u{1F600}$", "😀"],
      ["^\\p{Letter}+$", "héllo"],
      ["^\\p{Script=Greek}+$", "αβγ"],
      ["^\\p{Script=Greek}+$", "abc"],
      ["^[\\s\\S]{0,5}$", "a\nb\rc"],
      ["^\\d+\\w*\\b", "123abc def"],
      ["^[^\\s]+$", "a\u00a0"],
      ["^\\p{Cased_Letter}$", "ª"],
      ["^\\p{Cased_Letter}$", "A"],
      ["^[[:alpha:][a]$", ":a"],
      ["^(?<word>a+)b$", "aab"],
    ];
    for (const [pattern, text] of cases) {
      const validator = compileOutputSchema({ type: "string", pattern });
      expect(validator.backtracking, pattern).toEqual([]); // RE2 took it
      expect(validator.check(JSON.stringify(text)).ok, `${pattern} on ${JSON.stringify(text)}`).toBe(new RegExp(pattern, "u").test(text));
    }
  });

  test("what RE2 cannot match as ECMAScript does (lookaround, backreferences, repeats over 1,000, \\S in a class) is matched by JavaScript's engine, and listed for a warning", () => {
    for (const [pattern, yes, no] of [
      ["^(?=[A-Z])\\w{3}$", "Abc", "abc"],
      ["^(a)\\1$", "aa", "ab"],
      ["^.{1,2000}$", "x".repeat(2000), "x".repeat(2001)],
      ["^[\\S\\d]+$", "ab1", "a b"],
      ["^(?s:.)$", "\n", "ab"],
      ["(?m:a$)", "a\rb", "ab"],
    ] as const) {
      const validator = compileOutputSchema({ type: "string", pattern });
      expect(validator.backtracking.map((entry) => [entry.at, entry.pattern])).toEqual([["#/pattern", pattern]]);
      expect(validator.check(JSON.stringify(yes)).ok).toBe(true);
      expect(validator.check(JSON.stringify(no)).ok).toBe(false);
    }
  });

  test("JSON Schema's \\uXXXX escapes, Unicode classes and code points work as in ECMAScript with the u flag", () => {
    const check = (pattern: string, text: string) => compileOutputSchema({ type: "string", pattern }).check(JSON.stringify(text)).ok;
    expect(check("^[\\u0041-\\u005A]+$", "ABC")).toBe(true);
    expect(check("^[\\u0041-\\u005A]+$", "abc")).toBe(false);
    expect(check("^\\p{L}+$", "héllo")).toBe(true);
    expect(check("^.$", "😀")).toBe(true); // one code point
    expect(check("\\\\u0041", "\\u0041")).toBe(true); // an escaped backslash before 'u' is a backslash
    expect(check("^\\d{3}-\\d{4}$", "555-1234")).toBe(true);
    expect(check("b", "abc")).toBe(true); // unanchored
  });
});

describe("compileOutputSchema refuses what it cannot honour", () => {
  const refused: [string, unknown, string][] = [
    ["not an object", "string", "not a usable JSON Schema: expected an object"],
    ["an array", [{ type: "string" }], "expected an object"],
    ["an unsupported keyword", { type: "object", properties: { a: { if: { type: "string" } } } }, "#/properties/a: unsupported keyword 'if' (supported: type, enum"],
    ["patternProperties", { patternProperties: { "^x": {} } }, "#: unsupported keyword 'patternProperties'"],
    ["a bad type name", { type: "text" }, "#/type: must be one of object, array, string"],
    ["a malformed required", { required: "a" }, "#/required: must be an array of property names"],
    ["an unresolved $ref", { $ref: "#/$defs/missing" }, "#/$ref: '#/$defs/missing' does not resolve"],
    ["an external $ref", { $ref: "https://example.com/schema.json" }, "does not resolve"],
    ["a bad pattern", { type: "string", pattern: "(" }, "#/pattern: is not a valid regular expression"],
    ["an RE2 pattern that is not ECMAScript", { type: "string", pattern: "(?i)abc" }, "#/pattern: is not a valid regular expression"],
    ["tuple items", { items: [{ type: "string" }] }, "tuple 'items' arrays are not supported"],
    ["nested $defs", { properties: { a: { $defs: {} } } }, "#/properties/a: '$defs' is supported only at the root"],
    ["an empty anyOf", { anyOf: [] }, "#/anyOf: must be a non-empty array of schemas"],
    ["a negative minItems", { minItems: -1 }, "#/minItems: must be a non-negative integer"],
    ["draft-4 boolean exclusiveMinimum", { minimum: 0, exclusiveMinimum: true }, "#/exclusiveMinimum: must be a number"],
    ["a $ref cycle that never descends", { $ref: "#/$defs/a", $defs: { a: { anyOf: [{ $ref: "#/$defs/b" }] }, b: { $ref: "#/$defs/a" } } }, "'$ref' cycle through"],
  ];
  for (const [name, schema, message] of refused) {
    test(name, () => {
      expect(() => compileOutputSchema(schema)).toThrow(message);
      try {
        compileOutputSchema(schema);
      } catch (error) {
        expect((error as Error).message).not.toContain("\n");
      }
    });
  }

  test("annotations are accepted", () => {
    expect(() =>
      compileOutputSchema({ $id: "x", title: "T", description: "d", $comment: "c", examples: [1], default: 1, deprecated: false, type: "integer", format: "int32" }),
    ).not.toThrow();
  });
});
