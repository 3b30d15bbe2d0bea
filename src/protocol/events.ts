/**
 * What the ReAct engine yields. Each event is durable: the runner numbers it (`seq`), stores it and
 * publishes it as a `step` frame — except `final_answer`, which becomes the task's `result` frame.
 */
import { z } from "zod";

export const Usage = z.object({
  input_tokens: z.number().int().nonnegative(),
  output_tokens: z.number().int().nonnegative(),
});
export type Usage = z.infer<typeof Usage>;

/** What the model said in a step that calls tools (and its reasoning, where the provider gives it). */
export const ThoughtEvent = z.object({
  event_type: z.literal("thought"),
  step: z.number().int().positive(),
  data: z.object({ text: z.string(), reasoning: z.string().optional() }),
});

/** Tokens one model call used; the first event of every step. */
export const UsageEvent = z.object({
  event_type: z.literal("usage"),
  step: z.number().int().positive(),
  data: Usage,
});

export const ToolCallEvent = z.object({
  event_type: z.literal("tool_call"),
  step: z.number().int().positive(),
  data: z.object({ id: z.string(), name: z.string(), arguments: z.unknown() }),
});

export const ToolResultEvent = z.object({
  event_type: z.literal("tool_result"),
  step: z.number().int().positive(),
  data: z.object({ id: z.string(), name: z.string(), result: z.unknown() }),
});

/** A tool that could not run or threw; the model sees it as an observation and may recover. */
export const ToolErrorEvent = z.object({
  event_type: z.literal("tool_error"),
  step: z.number().int().positive(),
  data: z.object({
    id: z.string(),
    name: z.string(),
    error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean() }),
  }),
});

export const FinalAnswerEvent = z.object({
  event_type: z.literal("final_answer"),
  step: z.number().int().positive(),
  data: z.object({
    output: z.string(),
    /** The answer parsed, when the agent has an `output_schema` (then `output` is its JSON text). */
    output_json: z.unknown().optional(),
    total_steps: z.number().int().nonnegative(),
    total_tokens: z.number().int().nonnegative(),
  }),
});

/**
 * A task taken up again after the server running it stopped (another node took it over, or this
 * one restarted): the conversation is rebuilt from the stored events and goes on with the next
 * model step. Calls that were announced but have no result are settled first: `rerun` (idempotent
 * tools, run again) or `not_rerun` (reported to the model as `tool_error` code `interrupted`).
 * `step` is the last step stored before it (0: none); `after_seq` the last seq stored before it.
 */
export const ResumedEvent = z.object({
  event_type: z.literal("resumed"),
  step: z.number().int().nonnegative(),
  data: z.object({
    /** 1 for the first resume of the task, 2 for the second… */
    attempt: z.number().int().positive(),
    /** The node that resumed it (cluster mode), or null on a single server. */
    node: z.string().nullable(),
    after_seq: z.number().int().nonnegative(),
    not_rerun: z.array(z.string()),
    rerun: z.array(z.string()),
    /**
     * `takeover`: another node's run was cut off; `restart`: this server's; `continued`: the task
     * waited for a person (an approval, an answer) and goes on now that they decided;
     * `store_failure`: its run stopped because the store could not write (a full disk) and the
     * store writes again.
     */
    reason: z.enum(["takeover", "restart", "continued", "store_failure"]),
  }),
});
export type ResumedEvent = z.infer<typeof ResumedEvent>;
export type ResumeReason = ResumedEvent["data"]["reason"];

/** Builds a `resumed` event (see `ResumedEvent`); the runner numbers and stores it like any step event. */
export function resumedEvent(options: {
  step: number;
  attempt: number;
  node: string | null;
  afterSeq: number;
  notRerun: readonly string[];
  rerun: readonly string[];
  reason: ResumedEvent["data"]["reason"];
}): ResumedEvent {
  return ResumedEvent.parse({
    event_type: "resumed",
    step: options.step,
    data: {
      attempt: options.attempt,
      node: options.node,
      after_seq: options.afterSeq,
      not_rerun: [...options.notRerun],
      rerun: [...options.rerun],
      reason: options.reason,
    },
  });
}

/**
 * A message from a person that joins the running conversation (steering: `{"type":"input"}`, or a
 * busy thread's `steer` policy). Stored when the model reads it — right before model step `step` —
 * so the log says exactly what the model saw, in order. `id` is the input's id (given when it was
 * accepted); `by` who sent it.
 */
export const UserInputEvent = z.object({
  event_type: z.literal("user_input"),
  step: z.number().int().positive(),
  data: z.object({ id: z.string(), text: z.string(), by: z.string() }),
});

/**
 * The model called a tool that needs a person's approval (the agent's `approval` list): the call is
 * not run, and the task waits (status `waiting`) until it is decided, or until `expires_at`.
 */
export const ApprovalRequestedEvent = z.object({
  event_type: z.literal("approval_requested"),
  step: z.number().int().positive(),
  data: z.object({ id: z.string(), name: z.string(), arguments: z.unknown(), expires_at: z.string().nullable() }),
});

/** How an approval was decided: by a person (`by`: their key's name), or by its timeout (`by`: `system`). */
export const ApprovalDecision = z.enum(["approved", "rejected", "timed_out"]);
export type ApprovalDecision = z.infer<typeof ApprovalDecision>;

export const ApprovalDecidedEvent = z.object({
  event_type: z.literal("approval_decided"),
  step: z.number().int().positive(),
  data: z.object({ id: z.string(), name: z.string(), decision: ApprovalDecision, reason: z.string().optional(), by: z.string() }),
});

/** The model asked the user a question (the built-in `ask_user` tool): the task waits for the answer. */
export const QuestionEvent = z.object({
  event_type: z.literal("question"),
  step: z.number().int().positive(),
  data: z.object({ id: z.string(), name: z.string(), question: z.string(), expires_at: z.string().nullable() }),
});

/** The answer to a `question` (it becomes the tool's result); `text` null when nobody answered in time. */
export const AnswerEvent = z.object({
  event_type: z.literal("answer"),
  step: z.number().int().positive(),
  data: z.object({ id: z.string(), name: z.string(), text: z.string().nullable(), by: z.string() }),
});

/**
 * The final answer was sent back to the model, which answers again (`attempt`: the how-manieth
 * retry): it did not match the agent's `output_schema` (`kind` absent: the model is told `message`),
 * or it was `empty`, or the provider cut it at the output token limit (`truncated`). The answer's
 * text is the step's `thought`.
 */
export const OutputInvalidEvent = z.object({
  event_type: z.literal("output_invalid"),
  step: z.number().int().positive(),
  data: z.object({ message: z.string(), attempt: z.number().int().positive(), kind: z.enum(["empty", "truncated"]).optional() }),
});

/**
 * Live-only: a piece of text or reasoning as the model produces it. Published to watchers, never
 * stored or replayed — the step's durable events carry the whole text.
 */
export const DeltaEvent = z.object({
  event_type: z.literal("delta"),
  step: z.number().int().positive(),
  data: z.object({ kind: z.enum(["text", "reasoning"]), text: z.string() }),
});
export type DeltaEvent = z.infer<typeof DeltaEvent>;

export const TaskEvent = z.discriminatedUnion("event_type", [
  UsageEvent,
  ThoughtEvent,
  ToolCallEvent,
  ToolResultEvent,
  ToolErrorEvent,
  ResumedEvent,
  UserInputEvent,
  ApprovalRequestedEvent,
  ApprovalDecidedEvent,
  QuestionEvent,
  AnswerEvent,
  OutputInvalidEvent,
  FinalAnswerEvent,
]);
export type TaskEvent = z.infer<typeof TaskEvent>;
export type StepEvent = Exclude<TaskEvent, { event_type: "final_answer" }>;
export type FinalAnswerEvent = z.infer<typeof FinalAnswerEvent>;
