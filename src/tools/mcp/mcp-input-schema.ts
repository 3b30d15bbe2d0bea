/**
 * Argument validation for MCP tools. An MCP tool describes its input as JSON Schema. The model is
 * shown that schema unchanged (`Tool.jsonSchema`), and the engine validates the model's arguments
 * with a zod schema that hands the check to a JSON Schema validator: Ajv, through the MCP SDK's
 * `AjvJsonSchemaValidator`, the same validator the SDK uses for tool output.
 *
 * Why not `z.fromJSONSchema` (zod 4.6, "semi-experimental"): it throws on keywords it does not
 * support (`if`/`then`/`else`, `unevaluatedProperties`, …), and converting back with
 * `z.toJSONSchema` changes what the model sees (a `date-time` string gains a long regex `pattern`).
 */
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv";
import type { JsonSchemaType, jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import { z } from "zod";
import { compilePattern } from "../../lib/linear-regex.ts";

/** Checks a tool's arguments; returns what is wrong, or undefined when they are valid. */
export type ArgumentsCheck = (input: Record<string, unknown>) => string | undefined;

/**
 * Compiles the check for one input JSON Schema. Throws when the validator cannot compile the schema
 * (e.g. an unresolvable `$ref`); the caller decides what to do then.
 */
export function compileArgumentsCheck(jsonSchema: Record<string, unknown>, validator: jsonSchemaValidator): ArgumentsCheck {
  // `$schema` is dropped: it only names a meta-schema, which the validator would try to resolve.
  const { $schema: _ignored, ...schema } = jsonSchema;
  const validate = validator.getValidator<Record<string, unknown>>(schema as JsonSchemaType);
  return (input) => {
    const result = validate(input);
    return result.valid ? undefined : `arguments do not match the tool's input schema: ${result.errorMessage}`;
  };
}

/**
 * The zod schema the engine validates an MCP tool call with: a JSON object, then `currentCheck()`.
 * The check is looked up at each call, so a tool keeps validating against the server's latest schema
 * after a reconnect; while the schema is unknown (server never reached), any object passes and the
 * server validates.
 */
export function mcpArgumentsSchema(currentCheck: () => ArgumentsCheck | undefined): z.ZodType<Record<string, unknown>> {
  return z.record(z.string(), z.unknown()).superRefine((input, context) => {
    const problem = currentCheck()?.(input);
    if (problem !== undefined) context.addIssue({ code: "custom", message: problem });
  });
}

/**
 * The JSON Schema validator for MCP tool schemas: the SDK's Ajv validator (its settings: formats,
 * all errors, no strict mode), with `pattern`s matched in linear time (src/lib/linear-regex.ts): a
 * tool's schema comes from its server, the arguments from the model, which a user steers — and a
 * pattern such as `^(a+)+$` held the event loop for seconds on 30 characters. A pattern RE2 cannot
 * take (lookaround, backreferences) is matched by JavaScript's engine, as the server's author wrote
 * it, and said once (`onBacktracking`).
 */
export function createToolSchemaValidator(onBacktracking: (pattern: string, reason: string) => void): jsonSchemaValidator {
  const warned = new Set<string>();
  const regExp = Object.assign(
    (pattern: string): { test(text: string): boolean } =>
      compilePattern(pattern, (reason) => {
        if (warned.has(pattern)) return;
        warned.add(pattern);
        onBacktracking(pattern, reason);
      }),
    { code: "linear-regex" },
  );
  const ajv = new Ajv({ strict: false, validateFormats: true, validateSchema: false, allErrors: true, code: { regExp } });
  addFormats(ajv);
  return new AjvJsonSchemaValidator(ajv);
}
