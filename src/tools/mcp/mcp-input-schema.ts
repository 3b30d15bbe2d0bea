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
import type { JsonSchemaType, JsonSchemaValidator, jsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/types.js";
import { Ajv, type ValidateFunction } from "ajv";
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

/** Compiled schemas kept for the next listing (by their JSON text): a refresh that changes nothing compiles nothing. */
const MAX_KEPT_VALIDATORS = 2_048;

/**
 * The JSON Schema validator for MCP tool schemas: Ajv with the settings of the SDK's Ajv validator
 * (formats, all errors, no strict mode), with `pattern`s matched in linear time (src/lib/linear-regex.ts): a
 * tool's schema comes from its server, the arguments from the model, which a user steers — and a
 * pattern such as `^(a+)+$` held the event loop for seconds on 30 characters. A pattern RE2 cannot
 * take (lookaround, backreferences) is matched by JavaScript's engine, as the server's author wrote
 * it, and said once (`onBacktracking`).
 *
 * Not the SDK's `AjvJsonSchemaValidator`: Ajv keeps every schema it compiles for good, and every
 * listing (each reconnect, each `tools/list_changed`) compiles the server's schemas anew as new
 * objects — a server announcing a changed list every 2 s grew agentkit by ~70 MB a second. Here each
 * schema is dropped from Ajv's cache once compiled (and so is its `$id`, which would otherwise pin
 * the first version of a schema that changes), and the last MAX_KEPT_VALIDATORS compiled ones are
 * kept by their JSON text instead.
 */
export function createToolSchemaValidator(onBacktracking: (pattern: string, reason: string) => void): jsonSchemaValidator & { retained(): number } {
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
  const kept = new Map<string, ValidateFunction>();
  const compile = (schema: JsonSchemaType): ValidateFunction => {
    const key = JSON.stringify(schema);
    let validate = kept.get(key);
    if (validate) kept.delete(key);
    else {
      // Nested `$id`s are kept by Ajv too (in `refs`, by id): a server that changes them at every
      // listing grew them without end. Whatever the compile added is dropped with the schema.
      const refsBefore = new Set(Object.keys(ajv.refs));
      const schemasBefore = new Set(Object.keys(ajv.schemas));
      try {
        validate = ajv.compile(schema);
      } finally {
        ajv.removeSchema(schema);
        for (const ref of Object.keys(ajv.refs)) if (!refsBefore.has(ref)) ajv.removeSchema(ref);
        for (const key of Object.keys(ajv.schemas)) if (!schemasBefore.has(key)) ajv.removeSchema(key);
      }
    }
    kept.set(key, validate);
    if (kept.size > MAX_KEPT_VALIDATORS) kept.delete(kept.keys().next().value!);
    return validate;
  };
  return {
    /** Schemas and references Ajv holds (its meta-schemas and formats' included): it must not grow with compiles. */
    retained: () => Object.keys(ajv.refs).length + Object.keys(ajv.schemas).length,
    getValidator<T>(schema: JsonSchemaType): JsonSchemaValidator<T> {
      const validate = compile(schema);
      return (input) =>
        validate(input)
          ? { valid: true, data: input as T, errorMessage: undefined }
          : { valid: false, data: undefined, errorMessage: ajv.errorsText(validate.errors) };
    },
  };
}

/**
 * A validator that compiles a schema when it is first used, for the SDK client's output schemas: it
 * compiles one for every tool of every `tools/list` page as it arrives — 10,000 tools with output
 * schemas held the event loop 1.7 s per listing, before agentkit keeps 512 of them — while only a
 * called tool's is ever needed. A schema that cannot be compiled fails that tool's calls (the SDK
 * says "Failed to validate structured content"), not the listing, which failed the whole server.
 */
export function lazyValidator(base: jsonSchemaValidator): jsonSchemaValidator {
  return {
    getValidator<T>(schema: JsonSchemaType): JsonSchemaValidator<T> {
      let validate: JsonSchemaValidator<T> | undefined;
      return (input) => {
        validate ??= base.getValidator<T>(schema);
        return validate(input);
      };
    },
  };
}
