/**
 * The AG-UI body, `RunAgentInput` as `POST /ag-ui` and `POST /ag-ui/:agent` read it: the schema the
 * routes validate with (index.ts), and its documented form for the OpenAPI document
 * (src/server/openapi.ts). AG-UI's own schema is open (unknown fields are accepted), and so is
 * this one; the fields the endpoint uses are checked.
 */
import { z } from "zod";

/** The fields of a message this endpoint reads (others pass as they are). */
interface Message {
  id?: string;
  role: string;
  content?: string | { type: string; text?: string; [key: string]: unknown }[];
  [key: string]: unknown;
}

/** What is wrong with a message (the first thing found), or undefined. Linear, no allocation per part. */
function messageProblem(message: unknown): { path: (string | number)[]; message: string } | undefined {
  if (typeof message !== "object" || message === null || Array.isArray(message)) return { path: [], message: "must be an object" };
  const { id, role, content } = message as Record<string, unknown>;
  if (id !== undefined && typeof id !== "string") return { path: ["id"], message: "must be a string" };
  if (typeof role !== "string") return { path: ["role"], message: "must be a string" };
  if (content === undefined || typeof content === "string") return undefined;
  if (!Array.isArray(content)) return { path: ["content"], message: "must be a string or an array of parts" };
  if (content.length > 1000) return { path: ["content"], message: "at most 1000 parts" };
  for (const [index, part] of content.entries()) {
    if (typeof part !== "object" || part === null || Array.isArray(part)) return { path: ["content", index], message: "must be an object" };
    const { type, text } = part as Record<string, unknown>;
    if (typeof type !== "string") return { path: ["content", index, "type"], message: "must be a string" };
    if (text !== undefined && typeof text !== "string") return { path: ["content", index, "text"], message: "must be a string" };
  }
  return undefined;
}

/**
 * The messages, checked one by one, one issue (the first problem) per bad message: zod's schema
 * built every issue of a 1 MB body (both branches of `content`'s union, for each of 200,000 parts)
 * and held the event loop ~250 ms before the error showed 20 of them.
 */
const Messages = z
  .array(z.unknown())
  .max(10_000)
  .transform((messages, context) => {
    let issues = 0;
    for (const [index, message] of messages.entries()) {
      const problem = messageProblem(message);
      if (!problem) continue;
      context.addIssue({ code: "custom", path: [index, ...problem.path], message: problem.message });
      issues++;
    }
    return issues > 0 ? z.NEVER : (messages as Message[]);
  });
const ResumeEntry = z.looseObject({
  interruptId: z.string().min(1).max(512),
  status: z.enum(["resolved", "cancelled"]),
  payload: z.unknown().optional(),
});

/**
 * `RunAgentInput` as this endpoint reads it: AG-UI's own schema is open (unknown fields are
 * accepted), and so is this one; the fields it uses are checked.
 */
export const RunAgentInputBody = z.looseObject({
  threadId: z.string().min(1).max(128),
  runId: z.string().min(1).max(256),
  parentRunId: z.string().optional(),
  messages: Messages,
  tools: z.array(z.unknown()).optional(),
  context: z.array(z.unknown()).optional(),
  state: z.unknown().optional(),
  forwardedProps: z.unknown().optional(),
  resume: z.array(ResumeEntry).max(1000).optional(),
});
export type RunAgentInputBody = z.infer<typeof RunAgentInputBody>;

/** A message, as `messageProblem` checks it (for the document only: the endpoint checks by hand). */
export const AgUiMessage = z.looseObject({
  id: z.string().optional(),
  role: z.string().describe("`user`, `assistant`, `system`, `tool`, …: the run's input is the last message, which must be a user message"),
  content: z.union([z.string(), z.array(z.looseObject({ type: z.string(), text: z.string().optional() })).max(1000)]).optional(),
});
/**
 * `RunAgentInputBody` as the OpenAPI document shows it: the same, with each message's shape spelled
 * out (test/server/openapi.test.ts checks that the two agree).
 */
export const RunAgentInput = RunAgentInputBody.extend({ messages: z.array(AgUiMessage).max(10_000) });

/** `POST /ag-ui`: the documented example. */
export const AG_UI_REQUEST_EXAMPLE = { threadId: "thread-1", runId: "run-1", messages: [{ id: "msg-1", role: "user", content: "What is 17*23?" }] };
