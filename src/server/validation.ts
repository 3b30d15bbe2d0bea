/**
 * Request validation with this API's error shape: a 400 `validation_failed` listing the issues.
 * `validate` wraps zValidator for queries and params; `jsonBody` reads a JSON body itself, so it
 * can refuse a wrong content type (415) and hostile structure before paying to parse it.
 */
import { zValidator } from "@hono/zod-validator";
import type { Env, MiddlewareHandler, ValidationTargets } from "hono";
import type { z } from "zod";
import { AgentkitError } from "../errors.ts";
import { scanJsonStructure } from "../protocol/limits.ts";

/** The most issues an error lists: a body of 10,000 bad items made a 1.65 MB error (and its cost). */
const MAX_ISSUES = 20;

/** Hono's names for what is validated, as a client reads them ("Invalid json" read as malformed JSON). */
const TARGET_NAMES: Record<string, string> = { json: "request body", query: "query", param: "path", header: "headers" };

function validationFailed(target: string, error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): AgentkitError {
  const issues = error.issues.slice(0, MAX_ISSUES).map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
  }));
  const more = error.issues.length - issues.length;
  const summary =
    issues.map((issue) => (issue.path ? `${issue.path}: ${issue.message}` : issue.message)).join("; ") +
    (more > 0 ? `; and ${more} more issue${more === 1 ? "" : "s"}` : "");
  return new AgentkitError("validation_failed", `Invalid ${TARGET_NAMES[target] ?? target}: ${summary}`, { details: issues });
}

export function validate<Target extends keyof ValidationTargets, Schema extends z.ZodType>(target: Target, schema: Schema) {
  return zValidator(target, schema, (result) => {
    if (!result.success) throw validationFailed(target, result.error);
  });
}

/** `application/json`, or `application/<anything>+json`, with any parameters (`; charset=utf-8`). */
const JSON_MEDIA_TYPE = /^application\/(?:[\w.-]+\+)?json$/i;

/**
 * A JSON body validated against `schema`, available as `c.req.valid("json")`:
 *   - a `Content-Type` that is not JSON → 415 naming the type it got and the one expected;
 *   - JSON nested deeper or with more keys and values than `structure` allows → 400, checked on
 *     the text before parsing (parsing a 1 MiB body nested 500,000 deep blocks for ~25 ms);
 *   - malformed JSON → 400 `bad_request`; a schema violation → 400 `validation_failed`;
 *   - with `optional`, an empty body is `{}`.
 * Put it after a body-size limit: it reads the whole body.
 */
export function jsonBody<Schema extends z.ZodType, E extends Env = Env, P extends string = string>(
  schema: Schema,
  structure: {
    maxDepth: number;
    maxTokens: number;
    /** Appended to the message: the limits in the API's terms. */
    hint?: string;
    /** An empty body (whatever its Content-Type) is read as `{}`. */
    optional?: boolean;
  },
): MiddlewareHandler<E, P, { in: { json: z.input<Schema> }; out: { json: z.output<Schema> } }> {
  return async (c, next) => {
    if (structure.optional && (await c.req.text()).trim() === "") {
      const result = await schema.safeParseAsync({});
      if (!result.success) throw validationFailed("json", result.error);
      c.req.addValidatedData("json", result.data as {});
      return next();
    }
    const contentType = c.req.header("content-type");
    const mediaType = contentType?.split(";")[0]!.trim() ?? "";
    if (!JSON_MEDIA_TYPE.test(mediaType)) {
      const got = contentType ? `'${contentType.slice(0, 100)}'` : "no Content-Type";
      throw new AgentkitError("unsupported_media_type", `The body must be JSON: send Content-Type: application/json (got ${got})`);
    }
    const text = await c.req.text();
    const tooComplex = scanJsonStructure(text, structure);
    if (tooComplex) {
      const message = `the body ${tooComplex}${structure.hint ? ` (${structure.hint})` : ""}`;
      throw new AgentkitError("validation_failed", `Invalid request body: ${message}`, { details: [{ path: "", message }] });
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new AgentkitError("bad_request", "Malformed JSON in request body");
    }
    const result = await schema.safeParseAsync(value);
    if (!result.success) throw validationFailed("json", result.error);
    c.req.addValidatedData("json", result.data as {});
    await next();
  };
}
