/**
 * The API's own documents: `/openapi.json` is a valid OpenAPI 3.1 document (checked structurally
 * here, and against the official OpenAPI 3.1 JSON Schema), documents exactly the routes app.ts
 * answers, and what a live server answers — success and error, on the main routes — matches the
 * documented schema of that status (the zod schema, and the document's JSON Schema, strictly);
 * `/asyncapi.json` has every frame both ways and every close code; `/docs` is self-contained and,
 * in Chromium (when installed), renders every route and can call one with a key.
 *
 * test/fixtures/openapi-3.1.schema.json is the OpenAPI Initiative's schema for 3.1 documents,
 * https://spec.openapis.org/oas/3.1/schema/2022-10-07 (Apache-2.0), as published.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Ajv2020 from "ajv/dist/2020";
import type { z } from "zod";
import officialSchema from "../fixtures/openapi-3.1.schema.json";
import { CLIENT_FRAME_TYPES, ServerFrame } from "../../src/protocol/frames.ts";
import { CloseCode } from "../../src/errors.ts";
import { VERSION } from "../../src/version.ts";
import { OPEN_PATHS, ROUTES } from "../../src/server/app.ts";
import { buildAsyncApiDocument } from "../../src/server/asyncapi.ts";
import { DOCS_PAGE } from "../../src/server/docs-page.ts";
import { buildOpenApiDocument, openApiPath, ROUTE_DOCS, WatchFrame, type RouteDoc } from "../../src/server/openapi.ts";
import { findChromium, launchChromium } from "../helpers/chromium.ts";
import { answer, callTools, createScriptedModel } from "../helpers/scripted-model.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

type Json = Record<string, any>;
const DOC = buildOpenApiDocument({ version: "test" }) as Json;
const OPERATIONS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

// ---- a structural OpenAPI 3.1 validator --------------------------------------------------------

const SCHEMA_KEYWORDS = new Set([
  "$ref", "$defs", "$comment", "$schema", "$id", "$anchor", "$dynamicRef", "$dynamicAnchor",
  "type", "enum", "const", "properties", "required", "additionalProperties", "propertyNames", "patternProperties",
  "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains",
  "anyOf", "oneOf", "allOf", "not", "if", "then", "else",
  "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
  "minLength", "maxLength", "pattern", "format", "minProperties", "maxProperties",
  "title", "description", "default", "examples", "example", "readOnly", "writeOnly", "deprecated",
]);
const TYPES = new Set(["string", "number", "integer", "boolean", "object", "array", "null"]);

/** Problems with a JSON Schema's shape (draft 2020-12 keywords, each with a value of the right kind). */
function schemaProblems(schema: unknown, at: string, out: string[] = []): string[] {
  if (typeof schema === "boolean") return out;
  if (!schema || typeof schema !== "object" || Array.isArray(schema)) return [...out, `${at}: not a schema`];
  const s = schema as Json;
  for (const key of Object.keys(s)) if (!SCHEMA_KEYWORDS.has(key) && !key.startsWith("x-")) out.push(`${at}: unknown keyword '${key}'`);
  if (s.type !== undefined && ![s.type].flat().every((type: unknown) => TYPES.has(type as string))) out.push(`${at}: bad type ${JSON.stringify(s.type)}`);
  if (s.$ref !== undefined && typeof s.$ref !== "string") out.push(`${at}: $ref is not a string`);
  if (s.enum !== undefined && (!Array.isArray(s.enum) || s.enum.length === 0)) out.push(`${at}: enum must be a non-empty array`);
  if (s.required !== undefined && !(Array.isArray(s.required) && s.required.every((name: unknown) => typeof name === "string"))) out.push(`${at}: required must list names`);
  if (Array.isArray(s.required) && s.properties) for (const name of s.required) if (!(name in s.properties)) out.push(`${at}: required '${name}' is not a property`);
  for (const key of ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength"]) if (s[key] !== undefined && typeof s[key] !== "number") out.push(`${at}: ${key} is not a number`);
  if (s.pattern !== undefined) {
    try {
      new RegExp(s.pattern, "u");
    } catch {
      out.push(`${at}: pattern does not compile`);
    }
  }
  if (s.properties !== undefined) for (const [name, child] of Object.entries(s.properties)) schemaProblems(child, `${at}/properties/${name}`, out);
  for (const key of ["items", "additionalProperties", "propertyNames", "not"]) if (s[key] !== undefined) schemaProblems(s[key], `${at}/${key}`, out);
  for (const key of ["anyOf", "oneOf", "allOf"]) {
    if (s[key] === undefined) continue;
    if (!Array.isArray(s[key]) || s[key].length === 0) out.push(`${at}: ${key} must be a non-empty array`);
    else s[key].forEach((child: unknown, index: number) => schemaProblems(child, `${at}/${key}/${index}`, out));
  }
  return out;
}

function resolvePointer(doc: Json, ref: string): unknown {
  if (!ref.startsWith("#/")) return undefined;
  return ref
    .slice(2)
    .split("/")
    .reduce<unknown>((node, key) => (node && typeof node === "object" ? (node as Json)[key.replaceAll("~1", "/").replaceAll("~0", "~")] : undefined), doc);
}

/** Every `$ref` anywhere in `node`, with where it is. */
function refsIn(node: unknown, at = "#", out: { at: string; ref: string }[] = []) {
  if (Array.isArray(node)) node.forEach((child, index) => refsIn(child, `${at}/${index}`, out));
  else if (node && typeof node === "object") {
    for (const [key, child] of Object.entries(node)) {
      if (key === "$ref" && typeof child === "string") out.push({ at, ref: child });
      else refsIn(child, `${at}/${key}`, out);
    }
  }
  return out;
}

/** What is wrong with an OpenAPI 3.1 document, structurally (empty: nothing found). */
function openApiProblems(doc: Json): string[] {
  const problems: string[] = [];
  if (doc.openapi !== "3.1.0") problems.push(`openapi is ${JSON.stringify(doc.openapi)}, not "3.1.0"`);
  if (typeof doc.info?.title !== "string" || typeof doc.info?.version !== "string") problems.push("info needs a title and a version");
  if (!doc.paths || Object.keys(doc.paths).length === 0) problems.push("no paths");
  const operationIds = new Set<string>();
  const schemesDefined = new Set(Object.keys(doc.components?.securitySchemes ?? {}));
  const checkSecurity = (security: unknown, at: string) => {
    if (security === undefined) return;
    if (!Array.isArray(security)) return problems.push(`${at}: security is not an array`);
    for (const requirement of security) for (const name of Object.keys(requirement)) if (!schemesDefined.has(name)) problems.push(`${at}: unknown security scheme ${name}`);
  };
  checkSecurity(doc.security, "#");
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    if (!path.startsWith("/")) problems.push(`${path}: a path must start with /`);
    const templated = [...path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]!);
    const operations = Object.keys(item).filter((key) => OPERATIONS.includes(key));
    if (operations.length === 0) problems.push(`${path}: no operations`);
    for (const method of operations) {
      const op = item[method] as Json;
      const at = `${method.toUpperCase()} ${path}`;
      if (typeof op.operationId !== "string") problems.push(`${at}: no operationId`);
      else if (operationIds.has(op.operationId)) problems.push(`${at}: operationId ${op.operationId} is not unique`);
      else operationIds.add(op.operationId);
      checkSecurity(op.security, at);
      if (!op.responses || Object.keys(op.responses).length === 0) problems.push(`${at}: no responses`);
      for (const [status, response] of Object.entries<Json>(op.responses ?? {})) {
        if (!/^([1-5]\d\d|[1-5]XX|default)$/.test(status)) problems.push(`${at}: bad status key ${status}`);
        if (typeof response.description !== "string") problems.push(`${at} ${status}: no description`);
        for (const [type, media] of Object.entries<Json>(response.content ?? {})) problems.push(...schemaProblems(media.schema ?? {}, `${at} ${status} ${type}`));
      }
      const parameters = (op.parameters ?? []) as Json[];
      const seen = new Set<string>();
      for (const param of parameters) {
        if (!["path", "query", "header", "cookie"].includes(param.in)) problems.push(`${at}: parameter ${param.name} in ${param.in}`);
        if (seen.has(`${param.in}:${param.name}`)) problems.push(`${at}: parameter ${param.name} twice`);
        seen.add(`${param.in}:${param.name}`);
        if (param.in === "path" && (param.required !== true || !templated.includes(param.name))) problems.push(`${at}: path parameter ${param.name} must be required and in the path`);
        problems.push(...schemaProblems(param.schema, `${at} parameter ${param.name}`));
      }
      for (const name of templated) if (!parameters.some((param) => param.in === "path" && param.name === name)) problems.push(`${at}: {${name}} is not a parameter`);
      for (const media of Object.values<Json>(op.requestBody?.content ?? {})) problems.push(...schemaProblems(media.schema, `${at} body`));
    }
  }
  for (const [name, schema] of Object.entries(doc.components?.schemas ?? {})) problems.push(...schemaProblems(schema, `#/components/schemas/${name}`));
  for (const { at, ref } of refsIn(doc)) if (resolvePointer(doc, ref) === undefined) problems.push(`${at}: $ref ${ref} does not resolve`);
  return problems;
}

// The official schema's `$dynamicRef: "#meta"` (the Schema Object) is not resolved correctly by
// Ajv; in this schema that anchor is only ever `$defs/schema`, so it is referenced statically.
const official = JSON.parse(JSON.stringify(officialSchema).replaceAll('{"$dynamicRef":"#meta"}', '{"$ref":"#/$defs/schema"}'));
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
const validateOpenApi = ajv.compile(official);
/** The document's own JSON Schemas, for validating what the server answers (`$ref`s resolve in it). */
const DOC_ID = "https://agentkit.invalid/openapi.json";
ajv.addSchema({ ...DOC, $id: DOC_ID });

describe("the OpenAPI document", () => {
  test("is a valid OpenAPI 3.1.0 document: structure, operationIds, $refs, schemas", () => {
    expect(openApiProblems(DOC)).toEqual([]);
  });

  test("the structural validator finds what is broken", () => {
    const broken = structuredClone(DOC);
    broken.openapi = "3.0.3";
    broken.paths["/tasks"].get.operationId = broken.paths["/tasks"].post.operationId;
    broken.paths["/tasks/{id}"].get.responses["200"].content["application/json"].schema = { $ref: "#/components/schemas/Nope" };
    broken.components.schemas.Task.properties.status = { type: "text" };
    broken.paths["/tasks/{id}"].get.parameters = [];
    const problems = openApiProblems(broken).join("\n");
    expect(problems).toContain('not "3.1.0"');
    expect(problems).toContain("is not unique");
    expect(problems).toContain("#/components/schemas/Nope does not resolve");
    expect(problems).toContain('bad type "text"');
    expect(problems).toContain("{id} is not a parameter");
  });

  test("validates against the official OpenAPI 3.1 JSON Schema (and a broken one does not)", () => {
    const valid = validateOpenApi(DOC);
    expect(valid ? [] : validateOpenApi.errors).toEqual([]);
    const broken = structuredClone(DOC);
    broken.paths["/health"].get.responses["200"].content = "json";
    expect(validateOpenApi(broken)).toBe(false);
  });

  test("every component schema is valid draft 2020-12 JSON Schema (its meta-schema)", () => {
    const invalid = Object.entries<Json>(DOC.components.schemas).filter(([, schema]) => !ajv.validateSchema(schema));
    expect(invalid.map(([name]) => name)).toEqual([]);
    expect(ajv.validateSchema({ type: "nope" })).toBe(false);
  });

  test("documents exactly the routes the server answers, with the same methods (HEAD comes with GET)", () => {
    // ROUTES has the console's pages (served by Bun.serve before the app) too; its bundled scripts
    // and styles (`/chunk-<hash>.js|css`, named anew by each build) are checked live below.
    expect(Object.keys(ROUTES)).toContain("/");
    const answered = Object.entries(ROUTES)
      .flatMap(([path, methods]) => methods.filter((method) => method !== "HEAD").map((method) => `${method} ${openApiPath(path)}`))
      .sort();
    const documented = Object.entries<Json>(DOC.paths)
      .flatMap(([path, item]) => Object.keys(item).filter((key) => OPERATIONS.includes(key)).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    expect(documented).toEqual(answered);
  });

  test("request bodies and parameters are the schemas the routes validate with", () => {
    const create = DOC.components.schemas.CreateTaskBody;
    expect(create.additionalProperties).toBe(false);
    expect(create.required).toEqual(["input"]);
    expect(create.properties.input).toMatchObject({ type: "string", minLength: 1, maxLength: 100_000 });
    expect(create.properties.on_busy).toEqual({ $ref: "#/components/schemas/BusyPolicy" });
    const list = DOC.paths["/tasks"].get.parameters as Json[];
    expect(list.find((param) => param.name === "limit")!.schema).toMatchObject({ type: "integer", minimum: 1, maximum: 100, default: 20 });
    expect(list.find((param) => param.name === "status")!.schema.enum).toContain("waiting");
    const events = DOC.paths["/tasks/{id}/events"].get;
    expect(events.responses["200"].content["text/event-stream"]).toBeDefined();
    expect(events.security).toContainEqual({ apiKeyQuery: [] });
    expect(DOC.paths["/health"].get.security).toEqual([]);
    expect(DOC.paths["/openapi.json"].get.security).toEqual([]);
    expect(DOC.paths["/ws/tasks/{id}"].get.responses["101"]).toBeDefined();
    // Every route that can answer 429 queue_full says so (a generated client models the retry).
    for (const path of ["/tasks", "/threads/{id}/tasks", "/tasks/{id}/input"]) expect(DOC.paths[path].post.responses["429"], path).toBeDefined();
    expect(Object.keys(DOC.components.securitySchemes).sort()).toEqual(["apiKeyHeader", "apiKeyQuery", "bearer"]);
  });
});

// ---- the live server answers what the document says -----------------------------------------

const KEY = "admin-key-0123456789";
const BOB = "bob-key-0123456789ab";
const SHARE_SECRET = "s".repeat(40);

describe("a live server's answers match the documented schema of their status", () => {
  let server: TestServer;
  /** The server `check` asks. */
  let target: TestServer;
  /** `METHOD /path/{id} status` of every answer checked. */
  const seen = new Set<string>();

  beforeAll(async () => {
    server = await startTestServer({
      agents: [{ model: "demo/react" }, { model: "demo/slow" }],
      config: { apiKey: KEY, apiKeys: `bob:${BOB}`, shareSecret: SHARE_SECRET },
    });
    target = server;
  });
  afterAll(() => server.close());

  function routeOf(method: string, path: string): RouteDoc {
    const route = ROUTE_DOCS.find((candidate) => candidate.method === method && new RegExp(`^${candidate.path.replace(/:\w+/g, "[^/]+")}$`).test(path.split("?")[0]!));
    if (!route) throw new Error(`no documented route for ${method} ${path}`);
    return route;
  }

  /**
   * Sends a request, and checks its answer against the documentation of its status: the status is
   * documented, the headers it promises are there, and the body parses with the zod schema and
   * validates (strictly: `additionalProperties: false`) against the document's JSON Schema.
   */
  async function check(method: "GET" | "POST", path: string, expected: number, init: { key?: string | null; json?: unknown; body?: string; headers?: Record<string, string> } = {}) {
    const headers: Record<string, string> = { ...init.headers };
    const key = init.key === undefined ? KEY : init.key;
    if (key) headers.authorization = `Bearer ${key}`;
    const response = await target.http(path, { method, headers, redirect: "manual", ...(init.json !== undefined ? { json: init.json } : {}), ...(init.body !== undefined ? { body: init.body } : {}) });
    const text = await response.text();
    expect({ path, status: response.status, text: response.status === expected ? "" : text }).toEqual({ path, status: expected, text: "" });
    const route = routeOf(method, path);
    const documented = route.responses[response.status];
    if (!documented) throw new Error(`${method} ${route.path} answered ${response.status}, which is not documented`);
    seen.add(`${method} ${route.path} ${response.status}`);
    for (const name of Object.keys(documented.headers ?? {})) if (name !== "Retry-After" || response.status === 429) expect(response.headers.get(name)).not.toBeNull();
    const contentType = response.headers.get("content-type") ?? "";
    if (!documented.schema) {
      if (documented.contentType) expect(contentType).toStartWith(documented.contentType);
      else expect(text).toBe("");
      return { response, body: text as unknown };
    }
    if (documented.alternative && contentType.startsWith(documented.alternative.contentType)) {
      // Each `data:` line is one event, of the documented schema (`x-event-data`), strictly.
      const op = DOC.paths[openApiPath(route.path)][route.method.toLowerCase()];
      const validateEvent = ajv.getSchema(`${DOC_ID}${op.responses[String(response.status)].content[documented.alternative.contentType]["x-event-data"].$ref}`)!;
      const events = text.split("\n").filter((line) => line.startsWith("data: ")).map((line) => JSON.parse(line.slice(6)));
      expect(events.length).toBeGreaterThan(0);
      for (const event of events) {
        const parsed = documented.alternative.eventData.safeParse(event);
        expect(parsed.success ? [] : parsed.error.issues).toEqual([]);
        expect(validateEvent(event) ? [] : validateEvent.errors).toEqual([]);
      }
      return { response, body: text as unknown };
    }
    expect(contentType).toStartWith("application/json");
    const body = JSON.parse(text);
    const parsed = (documented.schema as z.ZodType).safeParse(body);
    expect(parsed.success ? [] : parsed.error.issues).toEqual([]);
    const pointer = refOf(route, response.status);
    const validate = ajv.getSchema(`${DOC_ID}${pointer}`)!;
    expect(validate(body) ? [] : validate.errors).toEqual([]);
    return { response, body };
  }

  /** The `$ref` of the documented JSON body of a status. */
  function refOf(route: RouteDoc, status: number): string {
    const op = DOC.paths[openApiPath(route.path)][route.method.toLowerCase()];
    return op.responses[String(status)].content["application/json"].schema.$ref;
  }

  async function finished(id: string, statuses = ["completed", "failed", "cancelled", "timed_out"]) {
    for (let tries = 0; tries < 400; tries++) {
      const task = (await (await target.http(`/tasks/${id}`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { status: string };
      if (statuses.includes(task.status)) return task;
      await Bun.sleep(25);
    }
    throw new Error(`task ${id} did not finish`);
  }

  test("the checker refuses an answer with a field the document does not allow", () => {
    const validate = ajv.getSchema(`${DOC_ID}#/components/schemas/Task`)!;
    const task = { id: "t", owner: "o", agent: "a", input: "i", metadata: {}, status: "queued", stop_reason: null, output: null, error: null, total_steps: 0, total_tokens: 0, input_tokens: 0, output_tokens: 0, cost_usd: null, thread_id: null, output_json: null, wait_until: null, last_seq: 0, pruned_through: 0, created_at: "x", started_at: null, finished_at: null };
    expect(validate(task)).toBe(true);
    expect(validate({ ...task, extra: 1 })).toBe(false);
    expect(validate({ ...task, status: "paused" })).toBe(false);
  });

  test("health, agents, tasks, events (JSON and SSE), cancel, share, people in the loop, threads, docs", async () => {
    await check("GET", "/health", 200, { key: null });
    await check("GET", "/openapi.json", 200, { key: null });
    await check("GET", "/asyncapi.json", 200, { key: null });
    await check("GET", "/docs", 200, { key: null });
    await check("GET", "/metrics", 200);
    await check("GET", "/metrics", 401, { key: null });
    await check("GET", "/metrics", 403, { key: BOB });
    await check("GET", "/agents", 200);
    await check("GET", "/agents", 401, { key: null });
    await check("GET", "/agents", 401, { key: "wrong-key-0123456789" });

    // Tasks.
    const { body: task } = (await check("POST", "/tasks", 201, { json: { input: "What is 17*23?" } })) as { body: { id: string } };
    await check("POST", "/tasks", 400, { json: { input: "" } });
    await check("POST", "/tasks", 400, { json: { input: "x", agent: "nobody" } });
    await check("POST", "/tasks", 400, { json: { input: "x", surprise: true } });
    await check("POST", "/tasks", 400, { body: "{not json", headers: { "content-type": "application/json" } });
    await check("POST", "/tasks", 415, { body: "input=x", headers: { "content-type": "application/x-www-form-urlencoded" } });
    await check("POST", "/tasks", 413, { json: { input: "x".repeat(2 * 1024 * 1024) } });
    await check("POST", "/tasks", 404, { json: { input: "x", thread_id: "thr_missing" } });
    await check("POST", "/tasks", 401, { key: null, json: { input: "x" } });
    await finished(task.id);
    await check("GET", "/tasks", 200);
    await check("GET", "/tasks?status=completed&limit=1", 200);
    await check("GET", "/tasks?limit=0", 400);
    await check("GET", "/tasks", 401, { key: null });
    await check("GET", `/tasks/${task.id}`, 200);
    await check("GET", `/tasks/${task.id}`, 404, { key: BOB });
    await check("GET", `/tasks/${"x".repeat(200)}`, 400);
    await check("GET", "/tasks/missing", 401, { key: null });

    // Events: a JSON page, the stream, and the stream of an ended task with nothing left (204).
    const { body: page } = (await check("GET", `/tasks/${task.id}/events`, 200)) as { body: { last_seq: number; events: unknown[] } };
    expect(page.events.length).toBeGreaterThan(1);
    await check("GET", `/tasks/${task.id}/events?after=999999`, 400);
    await check("GET", `/tasks/${task.id}/events?after=x`, 400);
    await check("GET", "/tasks/missing/events", 404);
    await check("GET", `/tasks/${task.id}/events`, 401, { key: null });
    const { body: stream } = await check("GET", `/tasks/${task.id}/events`, 200, { headers: { accept: "text/event-stream" } });
    const frames = String(stream)
      .split("\n")
      .filter((line) => line.startsWith("data: "))
      .map((line) => JSON.parse(line.slice(6)));
    expect(frames.map((frame) => frame.type)).toContain("result");
    const validateFrame = ajv.getSchema(`${DOC_ID}#/components/schemas/WatchFrame`)!;
    for (const frame of frames) {
      expect(WatchFrame.safeParse(frame).success).toBe(true);
      expect(validateFrame(frame) ? [] : validateFrame.errors).toEqual([]);
    }
    await check("GET", `/tasks/${task.id}/events?after=${page.last_seq}`, 204, { headers: { accept: "text/event-stream" } });

    // Cancel.
    await check("POST", `/tasks/${task.id}/cancel`, 200);
    await check("POST", "/tasks/missing/cancel", 404);
    await check("POST", `/tasks/${task.id}/cancel`, 404, { key: BOB });
    await check("POST", `/tasks/${"x".repeat(200)}/cancel`, 400);
    await check("POST", `/tasks/${task.id}/cancel`, 401, { key: null });

    // Share, and what a share token may not do (403).
    const { body: share } = (await check("POST", `/tasks/${task.id}/share`, 201, { json: { ttl_seconds: 600 } })) as { body: { token: string } };
    await check("POST", `/tasks/${task.id}/share`, 201);
    await check("POST", `/tasks/${task.id}/share`, 400, { json: { scope: "thread" } });
    await check("POST", `/tasks/${task.id}/share`, 400, { json: { ttl_seconds: 1 } });
    await check("POST", `/tasks/${task.id}/share`, 415, { body: "ttl", headers: { "content-type": "text/plain" } });
    await check("POST", `/tasks/${task.id}/share`, 413, { json: { pad: "x".repeat(5000) } });
    await check("POST", "/tasks/missing/share", 404);
    await check("POST", `/tasks/${task.id}/share`, 401, { key: null });
    await check("GET", `/tasks/${task.id}`, 200, { key: share.token });
    await check("POST", `/tasks/${task.id}/share`, 403, { key: share.token });
    await check("POST", `/tasks/${task.id}/cancel`, 403, { key: share.token });
    await check("POST", "/tasks", 403, { key: share.token, json: { input: "x" } });
    await check("GET", "/tasks", 403, { key: share.token });
    await check("GET", "/agents", 403, { key: share.token });
    await check("POST", "/threads", 403, { key: share.token });
    await check("GET", "/threads", 403, { key: share.token });
    // Webhooks: a task's delivery status (none here: no webhook), and the signing secret (admin only).
    await check("GET", `/tasks/${task.id}/webhooks`, 200);
    await check("GET", `/tasks/${task.id}/webhooks`, 403, { key: share.token });
    await check("GET", `/tasks/${task.id}/webhooks`, 401, { key: null });
    await check("GET", `/tasks/${task.id}/webhooks`, 404, { key: BOB });
    await check("GET", `/tasks/${"x".repeat(200)}/webhooks`, 400);
    await check("GET", "/webhooks/secret", 200);
    await check("GET", "/webhooks/secret", 403, { key: BOB });
    await check("GET", "/webhooks/secret", 401, { key: null });
    await check("POST", "/tasks", 400, { json: { input: "x", webhook_url: "http://127.0.0.1:9/hook" } });

    // People in the loop, on a task that has ended (409) and on one that runs (202).
    await check("POST", `/tasks/${task.id}/input`, 409, { json: { text: "more" } });
    await check("POST", `/tasks/${task.id}/input`, 400, { json: { text: "" } });
    await check("POST", `/tasks/${task.id}/input`, 415, { body: "more", headers: { "content-type": "text/plain" } });
    await check("POST", `/tasks/${task.id}/input`, 413, { json: { text: "x".repeat(2 * 1024 * 1024) } });
    await check("POST", "/tasks/missing/input", 404, { json: { text: "more" } });
    await check("POST", `/tasks/${task.id}/input`, 403, { key: share.token, json: { text: "more" } });
    await check("POST", `/tasks/${task.id}/input`, 401, { key: null, json: { text: "more" } });
    for (const route of ["approvals", "answers"] as const) {
      const body = route === "approvals" ? { call_id: "c1", decision: "approve" } : { call_id: "c1", text: "yes" };
      await check("POST", `/tasks/${task.id}/${route}`, 409, { json: body });
      await check("POST", `/tasks/${task.id}/${route}`, 400, { json: { call_id: "" } });
      await check("POST", `/tasks/${task.id}/${route}`, 415, { body: "x", headers: { "content-type": "text/plain" } });
      await check("POST", `/tasks/${task.id}/${route}`, 413, { json: { ...body, pad: "x".repeat(2 * 1024 * 1024) } });
      await check("POST", `/tasks/missing/${route}`, 404, { json: body });
      await check("POST", `/tasks/${task.id}/${route}`, 403, { key: share.token, json: body });
      await check("POST", `/tasks/${task.id}/${route}`, 401, { key: null, json: body });
    }
    const slow = (await check("POST", "/tasks", 201, { json: { input: "Tell me a story", agent: "agent1" } })).body as { id: string };
    await check("POST", `/tasks/${slow.id}/input`, 202, { json: { text: "Shorter, please" } });
    await check("POST", `/tasks/${slow.id}/cancel`, 200);

    // Threads: create, list, read, a task in it; a busy thread rejects (409) or steers (202).
    const { body: thread } = (await check("POST", "/threads", 201)) as { body: { id: string } };
    await check("POST", "/threads", 401, { key: null });
    await check("GET", "/threads", 200);
    await check("GET", "/threads?limit=500", 400);
    await check("GET", "/threads", 401, { key: null });
    const running = (await check("POST", `/threads/${thread.id}/tasks`, 201, { json: { input: "Tell me a story", agent: "agent1" } })).body as { id: string };
    await check("POST", `/threads/${thread.id}/tasks`, 409, { json: { input: "And then?", agent: "agent1", on_busy: "reject" } });
    await check("POST", `/threads/${thread.id}/tasks`, 202, { json: { input: "And then?", agent: "agent1", on_busy: "steer" } });
    await check("POST", "/tasks", 202, { json: { input: "And then?", agent: "agent1", thread_id: thread.id, on_busy: "steer" } });
    await check("POST", "/tasks", 409, { json: { input: "And then?", agent: "agent1", thread_id: thread.id, on_busy: "reject" } });
    await check("POST", `/threads/${thread.id}/tasks`, 400, { json: { input: "x", thread_id: thread.id } });
    await check("POST", `/threads/${thread.id}/tasks`, 415, { body: "x", headers: { "content-type": "text/plain" } });
    await check("POST", `/threads/${thread.id}/tasks`, 413, { json: { input: "x".repeat(2 * 1024 * 1024) } });
    await check("POST", `/threads/${thread.id}/tasks`, 403, { key: share.token, json: { input: "x" } });
    await check("POST", `/threads/${thread.id}/tasks`, 401, { key: null, json: { input: "x" } });
    await check("POST", "/threads/thr_missing/tasks", 404, { json: { input: "x" } });
    await check("GET", `/threads/${thread.id}`, 200);
    await check("GET", `/threads/${thread.id}`, 404, { key: BOB });
    await check("GET", `/threads/${"x".repeat(200)}`, 400);
    await check("GET", `/threads/${thread.id}`, 401, { key: null });
    await check("POST", `/tasks/${running.id}/cancel`, 200);

    // The WebSocket route: a plain GET is a 426; an upgrade from another origin a 403 (needs CORS origins: another server).
    await check("GET", `/ws/tasks/${task.id}`, 426);

  }, 60_000);

  test("open mode (no key configured): the admin's routes, the webhook secret and the metrics, answer anyone", async () => {
    const open = await startTestServer();
    target = open;
    try {
      await check("GET", "/webhooks/secret", 200, { key: null });
      await check("GET", "/metrics", 200, { key: null });
      expect(routeOf("GET", "/webhooks/secret").description).toContain("In open mode (no key configured) anyone may read it");
    } finally {
      target = server;
      await open.close();
    }
  });

  test("approvals and answers: 200 with the task once a person decides", async () => {
    const calc = { id: "c1", name: "calculator", arguments: JSON.stringify({ expression: "6*7" }) };
    const ask = { id: "q1", name: "ask_user", arguments: JSON.stringify({ question: "Which colour?" }) };
    const model = createScriptedModel([callTools([calc]), callTools([ask]), answer("42, in blue")]);
    const people = await startTestServer({ models: { m: model }, agents: [{ model: "test/m", tools: ["calculator", "ask_user"], approval: ["calculator"] }], config: { apiKey: KEY } });
    target = people;
    try {
      const { body: task } = (await check("POST", "/tasks", 201, { json: { input: "6*7?" } })) as { body: { id: string } };
      await finished(task.id, ["waiting"]);
      await check("POST", `/tasks/${task.id}/approvals`, 200, { json: { call_id: "c1", decision: "approve" } });
      // Decided: deciding it again is a 409 (also once it has run), a call that never waited a 404;
      // the model goes on and asks a question.
      await check("POST", `/tasks/${task.id}/approvals`, 409, { json: { call_id: "c1", decision: "reject" } });
      await check("POST", `/tasks/${task.id}/approvals`, 404, { json: { call_id: "nope", decision: "reject" } });
      for (let tries = 0; ; tries++) {
        const { events } = (await (await people.http(`/tasks/${task.id}/events`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { events: { data: { event_type?: string } }[] };
        if (events.some((event) => event.data.event_type === "question")) break;
        if (tries > 400) throw new Error("no question was asked");
        await Bun.sleep(25);
      }
      await finished(task.id, ["waiting"]);
      await check("POST", `/tasks/${task.id}/answers`, 200, { json: { call_id: "q1", text: "blue" } });
      expect((await finished(task.id)).status).toBe("completed");
    } finally {
      target = server;
      await people.close();
    }
  });

  test("AG-UI (POST /ag-ui, /ag-ui/:agent): the event stream, and every refusal before a run starts", async () => {
    const { id } = await server.createTask({ input: "What is 1+1?" }, { authorization: `Bearer ${KEY}` });
    const { body: share } = (await check("POST", `/tasks/${id}/share`, 201)) as { body: { token: string } };
    for (const path of ["/ag-ui", "/ag-ui/default"]) {
      const threadId = crypto.randomUUID();
      const input = (messages: unknown[], extra: Record<string, unknown> = {}) => ({ threadId, runId: crypto.randomUUID(), messages, ...extra });
      const user = [{ id: "u1", role: "user", content: "What is 2+3?" }];
      const { body: events } = await check("POST", path, 200, { json: input(user), headers: { accept: "text/event-stream" } });
      expect(String(events)).toContain('"type":"RUN_FINISHED"');
      await check("POST", path, 400, { json: input([{ id: "a1", role: "assistant", content: "Hi" }]) });
      await check("POST", path, 401, { key: null, json: input(user) });
      await check("POST", path, 403, { key: share.token, json: input(user) });
      await check("POST", path, 404, { json: { ...input([]), threadId: "no-such-thread", resume: [{ interruptId: "x", status: "resolved" }] } });
      await check("POST", path, 409, { json: input([], { resume: [{ interruptId: "x", status: "resolved" }] }) });
      await check("POST", path, 413, { json: input([{ id: "u2", role: "user", content: "x".repeat(1_100_000) }]) });
      await check("POST", path, 415, { body: "{}", headers: { "content-type": "text/plain" } });
    }
    // The documented example runs.
    const example = ROUTE_DOCS.find((route) => route.path === "/ag-ui")!.body!.example;
    const { body: ran } = await check("POST", "/ag-ui", 200, { json: example, headers: { accept: "text/event-stream" } });
    expect(String(ran)).toContain('"type":"RUN_FINISHED"');
    await check("POST", "/ag-ui/nobody", 404, { json: { threadId: crypto.randomUUID(), runId: "r", messages: [{ id: "u", role: "user", content: "hi" }] } });
  });

  test("MCP (POST /mcp): a tool call's event stream, a notification's 202, and the refusals", async () => {
    const { id } = await server.createTask({ input: "What is 1+1?" }, { authorization: `Bearer ${KEY}` });
    const { body: share } = (await check("POST", `/tasks/${id}/share`, 201)) as { body: { token: string } };
    const mcp = { accept: "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18" };
    const call = { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "default", arguments: { input: "What is 2+3?" } } };
    const { body: events } = await check("POST", "/mcp", 200, { json: call, headers: mcp });
    expect(String(events)).toContain("2+3 = 5");
    // The documented example (a tool call) runs, and so does a batch.
    const example = ROUTE_DOCS.find((route) => route.path === "/mcp")!.body!.example;
    expect(String((await check("POST", "/mcp", 200, { json: example, headers: mcp })).body)).toContain("17*23 = 391");
    await check("POST", "/mcp", 200, { json: [{ jsonrpc: "2.0", id: 7, method: "tools/list" }, { jsonrpc: "2.0", method: "notifications/initialized" }], headers: mcp });
    await check("POST", "/mcp", 202, { json: { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 99 } }, headers: mcp });
    // What the transport refuses is a JSON-RPC error (`id: null`) with an HTTP status, not agentkit's error shape.
    const { body: malformed } = (await check("POST", "/mcp", 400, { body: "{not json", headers: { ...mcp, "content-type": "application/json" } })) as { body: { error: { code: number } } };
    expect(malformed.error.code).toBe(-32700);
    await check("POST", "/mcp", 400, { json: { jsonrpc: "2.0", id: 1 }, headers: mcp });
    await check("POST", "/mcp", 400, { json: call, headers: { ...mcp, "mcp-protocol-version": "1999-01-01" } });
    await check("POST", "/mcp", 406, { json: call, headers: { ...mcp, accept: "application/json" } });
    await check("POST", "/mcp", 415, { body: JSON.stringify(call), headers: { ...mcp, "content-type": "text/plain" } });
    await check("POST", "/mcp", 401, { key: null, json: call, headers: mcp });
    await check("POST", "/mcp", 403, { key: share.token, json: call, headers: mcp });
    await check("POST", "/mcp", 413, { json: { ...call, params: { ...call.params, arguments: { input: "x".repeat(1_100_000) } } }, headers: mcp });
  });

  test("A2A (the agent cards, POST /a2a/:agent): JSON-RPC answers, and the refusals before one", async () => {
    const { body: card } = (await check("GET", "/.well-known/agent-card.json", 200, { key: null, headers: { "a2a-version": "1.0" } })) as { body: { name: string } };
    expect(card.name).toBe("default");
    await check("GET", "/a2a/default/.well-known/agent-card.json", 200, { key: null });
    await check("GET", "/a2a/nobody/.well-known/agent-card.json", 404, { key: null });
    const send = { jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message: { messageId: "m1", role: "ROLE_USER", parts: [{ text: "What is 2+3?" }] } } };
    const { body: sent } = (await check("POST", "/a2a/default", 200, { json: send })) as { body: { result: { task: { status: { state: string } } } } };
    expect(sent.result.task.status.state).toBe("TASK_STATE_COMPLETED");
    const { body: missing } = (await check("POST", "/a2a/default", 200, { json: { jsonrpc: "2.0", id: 2, method: "GetTask", params: { id: "nope" } } })) as { body: { error: { code: number } } };
    expect(missing.error.code).toBe(-32001);
    // The streaming methods (v0.3 and v1.0) answer Server-Sent Events, each `data:` a JSON-RPC response.
    const parts = [{ kind: "text", text: "What is 2+3?" }];
    const { body: streamed } = await check("POST", "/a2a/default", 200, { json: { jsonrpc: "2.0", id: 3, method: "message/stream", params: { message: { kind: "message", messageId: "m3", role: "user", parts } } } });
    expect(String(streamed)).toContain('"state":"completed"');
    const { body: v1 } = await check("POST", "/a2a/default", 200, { json: { ...send, id: 4, method: "SendStreamingMessage", params: { message: { ...send.params.message, messageId: "m4" } } } });
    expect(String(v1)).toContain("TASK_STATE_COMPLETED");
    // A notification (no `id`) is accepted with no answer: 202, no body.
    await check("POST", "/a2a/default", 202, { json: { jsonrpc: "2.0", method: "SendMessage", params: send.params } });
    await check("POST", "/a2a/default", 401, { key: null, json: send });
    await check("POST", "/a2a/nobody", 404, { json: send });
    await check("POST", "/a2a/default", 413, { json: { ...send, pad: "x".repeat(2 * 1024 * 1024) } });
    await check("POST", "/a2a/default", 415, { body: "{}", headers: { "content-type": "text/plain" } });
  });

  test("the console: its page and /ui are documented (open); only its bundled assets are not, named in the page's description", async () => {
    const { body: page } = await check("GET", "/", 200, { key: null });
    const { response } = await check("GET", "/ui", 308, { key: null });
    expect(response.headers.get("location")).toBe("/");
    // The assets the page loads: open, and not in the document, as their names change with each
    // build (`chunk-<hash>`); GET /'s description says where they are.
    const assets = [...String(page).matchAll(/(?:src|href)="(\/[^"]+)"/g)].map((match) => match[1]!);
    expect(assets.length).toBeGreaterThan(0);
    for (const asset of assets) {
      expect(asset).toMatch(/^\/chunk-[a-z0-9]+\.(js|css)$/);
      expect((await server.http(asset)).status).toBe(200);
      expect(DOC.paths[asset]).toBeUndefined();
    }
    expect(DOC.paths["/"].get.description).toContain("/chunk-<hash>.js");
  });

  test("every documented status of the main routes was seen live, but those a test server cannot be brought to", () => {
    const unprovoked = new Set([
      "POST /tasks 429", "POST /tasks 501", "POST /tasks 503",
      "POST /threads/:id/tasks 429", "POST /threads/:id/tasks 501", "POST /threads/:id/tasks 503",
      // 32 messages waiting for a step: interaction.test.ts ("messages pile up at most 32 deep") provokes it.
      "POST /tasks/:id/input 429",
      // Past the watcher limit: security.test.ts ("SSE streams and WebSocket connections count together") provokes it.
      "GET /tasks/:id/events 429",
      "POST /tasks/:id/share 501", "POST /tasks/:id/input 501", "POST /tasks/:id/approvals 501", "POST /tasks/:id/answers 501",
      "GET /ws/tasks/:id 101", "GET /ws/tasks/:id 403", "GET /webhooks/secret 501",
      "POST /ag-ui 429", "POST /ag-ui 503", "POST /ag-ui/:agent 429", "POST /ag-ui/:agent 503",
    ]);
    const missing = ROUTE_DOCS.flatMap((route) => Object.keys(route.responses).map((status) => `${route.method} ${route.path} ${status}`)).filter(
      (key) => !seen.has(key) && !unprovoked.has(key),
    );
    expect(missing).toEqual([]);
  });

  test("every POST route that reads a body documents it; only cancel and a new thread take none", () => {
    const bodiless = ROUTE_DOCS.filter((route) => route.method === "POST" && !route.body).map((route) => route.path);
    expect(bodiless.sort()).toEqual(["/tasks/:id/cancel", "/threads"]);
  });

  test("a documented request body example is accepted, and what the schema forbids is refused", async () => {
    // AG-UI's RunAgentInput is open by design (AG-UI's own schema accepts unknown fields): the only body that takes one.
    const open = new Set(["/ag-ui", "/ag-ui/:agent"]);
    for (const route of ROUTE_DOCS.filter((candidate) => candidate.body)) {
      const op = DOC.paths[openApiPath(route.path)][route.method.toLowerCase()];
      const example = op.requestBody.content["application/json"].example;
      const ref = op.requestBody.content["application/json"].schema.$ref as string;
      const validate = ajv.getSchema(`${DOC_ID}${ref}`)!;
      expect(validate(example) ? [] : validate.errors).toEqual([]);
      expect(route.body!.schema.safeParse(example).success).toBe(true);
      const extra = { ...(example as object), not_documented: 1 };
      expect({ path: route.path, documented: validate(extra), validated: route.body!.schema.safeParse(extra).success }).toEqual({ path: route.path, documented: open.has(route.path), validated: open.has(route.path) });
    }
  });

  test("AG-UI: the documented RunAgentInput and the one the route validates with agree, message by message", async () => {
    const { RunAgentInputBody } = await import("../../src/protocols/ag-ui/schemas.ts");
    const validate = ajv.getSchema(`${DOC_ID}#/components/schemas/RunAgentInput`)!;
    const messages: unknown[] = [
      { role: "user", content: "hi" },
      { id: "m", role: "user" },
      { id: "m", role: "assistant", content: [{ type: "text", text: "hi" }, { type: "image", url: "x" }], toolCalls: [] },
      { role: "user", content: [] },
      { role: 1 },
      { content: "no role" },
      { id: 7, role: "user" },
      { role: "user", content: 5 },
      { role: "user", content: [{ text: "no type" }] },
      { role: "user", content: [{ type: "text", text: 5 }] },
      { role: "user", content: Array.from({ length: 1001 }, () => ({ type: "text" })) },
      "a string",
      null,
    ];
    for (const message of messages) {
      const body = { threadId: "t", runId: "r", messages: [message] };
      expect({ message, documented: validate(body) }).toEqual({ message, documented: RunAgentInputBody.safeParse(body).success });
    }
    for (const body of [{ threadId: "", runId: "r", messages: [] }, { threadId: "t", messages: [] }, { threadId: "t", runId: "r", messages: [], resume: [{ interruptId: "i", status: "maybe" }] }]) {
      expect(validate(body)).toBe(RunAgentInputBody.safeParse(body).success);
    }
  });

  test("a WebSocket upgrade answers 101 with the subprotocol the document names", async () => {
    const { id } = await server.createTask({ input: "What is 2+2?" }, { authorization: `Bearer ${KEY}` });
    const socket = new WebSocket(`${server.baseUrl.replace("http", "ws")}/ws/tasks/${id}`, ["agentkit", `agentkit.key.${KEY}`]);
    const first = await new Promise<{ type: string }>((resolve, reject) => {
      socket.onmessage = (event) => resolve(JSON.parse(String(event.data)));
      socket.onerror = () => reject(new Error("socket error"));
    });
    expect(socket.protocol).toBe("agentkit");
    expect(first.type).toBe("connected");
    socket.close();
    expect(DOC.paths["/ws/tasks/{id}"].get.responses["101"]).toBeDefined();
    // Every route that can answer 429 queue_full says so (a generated client models the retry).
    for (const path of ["/tasks", "/threads/{id}/tasks", "/tasks/{id}/input"]) expect(DOC.paths[path].post.responses["429"], path).toBeDefined();
  });

  test("with keys, an open route answers OPTIONS (204) and another method (405), with Allow, without a key; a route that needs one answers 401", async () => {
    const open = new Set(ROUTE_DOCS.filter((route) => route.auth === "none").map((route) => route.path));
    expect([...open].sort()).toEqual([...OPEN_PATHS].sort());
    const validate = ajv.getSchema(`${DOC_ID}#/components/schemas/Error`)!;
    for (const [path, methods] of Object.entries(ROUTES)) {
      const url = path.replace(":agent", "default").replace(":id", "x");
      const options = await server.http(url, { method: "OPTIONS" });
      const put = await server.http(url, { method: "PUT" });
      const body = (await put.json()) as { error: { code: string } };
      expect(validate(body)).toBe(true);
      if (open.has(path)) {
        expect({ path, options: options.status, allow: options.headers.get("allow") }).toEqual({ path, options: 204, allow: methods.join(", ") });
        expect({ path, put: put.status, allow: put.headers.get("allow"), code: body.error.code }).toEqual({ path, put: 405, allow: methods.join(", "), code: "method_not_allowed" });
      } else {
        // Nothing about a protected route is told before the key: not even its methods.
        expect({ path, options: options.status, put: put.status, allow: put.headers.get("allow") }).toEqual({ path, options: 401, put: 401, allow: null });
      }
    }
    expect(DOC.info.description).toContain("without one they are a 401");
  });

  test("a known route asked with another method is a 405 shaped as the documented default error", async () => {
    const response = await server.http("/openapi.json", { method: "POST", headers: { authorization: `Bearer ${KEY}` } });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD");
    const validate = ajv.getSchema(`${DOC_ID}#/components/schemas/Error`)!;
    expect(validate(await response.json())).toBe(true);
  });

  test("/openapi.json is open and cached (the same bytes each time), /docs and /asyncapi.json too", async () => {
    const first = await server.http("/openapi.json");
    const second = await server.http("/openapi.json");
    expect(first.status).toBe(200);
    const text = await first.text();
    expect(await second.text()).toBe(text);
    expect(JSON.parse(text).info.version).toBe(VERSION);
    expect((await server.http("/asyncapi.json")).status).toBe(200);
    expect((await server.http("/docs")).status).toBe(200);
  });
});

// ---- the WebSocket protocol ------------------------------------------------------------------

describe("the AsyncAPI document", () => {
  const ASYNC = buildAsyncApiDocument({ version: "test" }) as Json;

  test("has every client and server frame type, each with a schema, and every close code", () => {
    expect(ASYNC.asyncapi).toBe("3.0.0");
    const messages = Object.values<Json>(ASYNC.components.messages);
    const serverTypes = (ServerFrame.options as readonly { shape: { type: { value: string } } }[]).map((frame) => frame.shape.type.value);
    const byDirection = (direction: string) => messages.filter((message) => message["x-direction"] === direction).map((message) => message.name).sort();
    expect(byDirection("server-to-client")).toEqual([...serverTypes].sort());
    expect(byDirection("client-to-server")).toEqual([...CLIENT_FRAME_TYPES].sort());
    for (const message of messages) {
      const payload = resolvePointer(ASYNC, message.payload.$ref) as Json;
      expect(payload.properties.type.const).toBe(message.name);
    }
    const codes = ASYNC.channels.task["x-close-codes"].map((close: { code: number }) => close.code).sort();
    expect(codes).toEqual(Object.values(CloseCode).sort());
    const reconnect = ASYNC.channels.task["x-close-codes"].filter((close: { reconnect: boolean }) => close.reconnect).map((close: { code: number }) => close.code).sort();
    expect(reconnect).toEqual([1001, 4008, 4408]);
  });

  test("every $ref resolves, every schema has a valid shape, and operations point at their channel's messages", () => {
    const dangling = refsIn(ASYNC).filter(({ ref }) => resolvePointer(ASYNC, ref) === undefined);
    expect(dangling).toEqual([]);
    const problems = Object.entries(ASYNC.components.schemas).flatMap(([name, schema]) => schemaProblems(schema, name));
    expect(problems).toEqual([]);
    for (const op of Object.values<Json>(ASYNC.operations)) {
      expect(["send", "receive"]).toContain(op.action);
      for (const ref of op.messages) expect(ref.$ref).toStartWith("#/channels/task/messages/");
    }
    // The step frame says what each event carries.
    const step = resolvePointer(ASYNC, "#/components/schemas/StepEvent") as Json;
    expect(step.oneOf.length).toBeGreaterThan(10);
  });

  test("each client frame's operation says what comes back and when; cancel's says it has no ack and that an ended task's sends nothing", () => {
    for (const [name, op] of Object.entries<Json>(ASYNC.operations).filter(([, candidate]) => candidate.action === "receive")) {
      expect({ name, description: typeof op.description }).toEqual({ name, description: "string" });
      expect(op.reply.messages.length).toBeGreaterThan(0);
    }
    const cancel = ASYNC.operations.receiveCancel;
    expect(cancel.reply.messages.map((ref: Json) => ref.$ref).sort()).toEqual(["#/channels/task/messages/server.error", "#/channels/task/messages/server.result"]);
    expect(cancel.description).toContain("no `ack`");
    expect(cancel.reply["x-no-reply"]).toContain("already ended");
    expect(ASYNC.operations.receiveInput.reply["x-no-reply"]).toBeUndefined();
  });

  test("server frames from a real task match the documented frame schemas", async () => {
    const ajvDraft7 = new (await import("ajv")).default({ strict: false, allErrors: true, validateFormats: false });
    ajvDraft7.addSchema({ ...ASYNC, $id: "https://agentkit.invalid/asyncapi.json" });
    const server = await startTestServer();
    try {
      const { id } = await server.createTask({ input: "What is 17*23?" });
      const socket = await server.watch(id);
      await socket.result();
      socket.send({ type: "ping" });
      await socket.waitFor((frame) => frame.type === "pong", "the pong");
      socket.close();
      const frames = socket.frames as Json[];
      for (const frame of frames) {
        const validate = ajvDraft7.getSchema(`https://agentkit.invalid/asyncapi.json#/components/schemas/${frame.type[0].toUpperCase()}${frame.type.slice(1)}Frame`)!;
        expect(validate(frame) ? [] : validate.errors).toEqual([]);
      }
      expect(frames.map((frame) => frame.type)).toContain("step");
    } finally {
      await server.close();
    }
  });
});

// ---- the docs page ------------------------------------------------------------------------------

describe("/docs", () => {
  test("is self-contained: no script, style, link or image from another host, and a CSP that allows only itself", () => {
    const html = DOCS_PAGE.html;
    const external = [...html.matchAll(/\b(?:src|href)\s*=\s*["']?((?:https?:)?\/\/[^"'\s>]+)/gi)].map((match) => match[1]);
    expect(external).toEqual([]);
    expect(html).not.toMatch(/@import|url\(\s*["']?(?:https?:)?\/\//i);
    expect(html).not.toMatch(/\bimport\s*\(|<script[^>]+src=/i);
    const csp = DOCS_PAGE.headers["Content-Security-Policy"];
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).toContain("connect-src 'self'");
  });

  const chromium = findChromium();
  const inChromium = "renders every route, the WebSocket frames and close codes, and calls a route with the key (Chromium)";
  test.skipIf(!chromium)(chromium ? inChromium : `${inChromium} — skipped: Chromium is not installed (set CHROMIUM_PATH or install chromium)`, async () => {
    const server = await startTestServer({ config: { apiKey: KEY } });
    const browser = await launchChromium(chromium!);
    try {
      const page = await browser.open(`${server.baseUrl}/docs`);
      await waitFor(page, `document.body.dataset.ready`, "the docs to load");
      expect(await page.evaluate(`document.body.dataset.ready`)).toBe("1");
      const rendered = await page.evaluate<string[]>(`[...document.querySelectorAll("details.op[data-path]")].map((card) => card.dataset.method.toUpperCase() + " " + card.dataset.path).sort()`);
      const documented = Object.entries<Json>(DOC.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`)).sort();
      expect(rendered).toEqual(documented);
      const frames = await page.evaluate<string[]>(`[...document.querySelectorAll("details.frame")].map((card) => card.dataset.frame).sort()`);
      expect(frames.length).toBe((ServerFrame.options as unknown[]).length + CLIENT_FRAME_TYPES.length);
      // A client frame's card says what answers it, and when (cancel: nothing, once the task has ended).
      expect(await page.evaluate<string>(`document.querySelector('details.frame[data-frame="client.cancel"] .answered').textContent`)).toContain("nothing is sent");
      expect(await page.evaluate<number>(`document.querySelectorAll("tr.close-code").length`)).toBe(Object.keys(CloseCode).length);
      // A response schema renders its properties (Task's `status`).
      expect(await page.evaluate<boolean>(`[...document.querySelectorAll("#op-getTask .prop-name")].some((node) => node.textContent === "status")`)).toBe(true);

      // Try GET /agents: without a key 401, with the key (kept in sessionStorage) 200.
      await page.evaluate(`document.getElementById("op-listAgents").open = true; document.querySelector("#op-listAgents form.try button[type=submit]").click()`);
      await waitFor(page, `/^\\d{3}/.test(document.querySelector("#op-listAgents .out-meta").textContent) && document.querySelector("#op-listAgents .out-meta").textContent`, "the first answer");
      expect(await page.evaluate<string>(`document.querySelector("#op-listAgents .out-meta .status").textContent`)).toStartWith("401");
      await page.evaluate(`(() => { const input = document.getElementById("api-key"); input.value = ${JSON.stringify(KEY)}; input.dispatchEvent(new Event("change")); })()`);
      expect(await page.evaluate<string>(`sessionStorage.getItem("agentkit.apiKey")`)).toBe(KEY);
      await page.evaluate(`document.querySelector("#op-listAgents .out-meta").textContent = ""; document.querySelector("#op-listAgents form.try button[type=submit]").click()`);
      // The status line shows before the body has been read: wait for the body too.
      await waitFor(page, `/^\\d{3}/.test(document.querySelector("#op-listAgents .out-meta").textContent) && document.querySelector("#op-listAgents pre.out").textContent !== ""`, "the second answer");
      expect(await page.evaluate<string>(`document.querySelector("#op-listAgents .out-meta .status").textContent`)).toStartWith("200");
      expect(await page.evaluate<string>(`document.querySelector("#op-listAgents pre.out").textContent`)).toContain('"agents"');

      // Start a task from its form, then watch it over the WebSocket form (key as subprotocol).
      await page.evaluate(`document.querySelector("#op-createTask form.try button[type=submit]").click()`);
      await waitFor(page, `/^\\d{3}/.test(document.querySelector("#op-createTask .out-meta").textContent) && document.querySelector("#op-createTask pre.out").textContent !== ""`, "the task to be created");
      const created = JSON.parse(await page.evaluate<string>(`document.querySelector("#op-createTask pre.out").textContent`)) as { id: string };
      await page.evaluate(`(() => { const form = document.querySelector("#op-watchTask form.try"); form.querySelector("input[name=id]").value = ${JSON.stringify(created.id)}; form.querySelector("button[type=submit]").click(); })()`);
      await waitFor(page, `document.querySelector("#op-watchTask pre.out").textContent.includes('"type":"result"')`, "the result frame in the WebSocket form");
    } finally {
      await browser.close();
      await server.close();
    }
  }, 60_000);
});

async function waitFor(page: { evaluate<T>(expression: string): Promise<T> }, expression: string, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await page.evaluate(expression)) return;
    await Bun.sleep(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}
