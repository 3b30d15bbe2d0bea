/**
 * The WebSocket wire protocol (the seed's, extended, never broken). Server frames are built here
 * and serialised once; client frames are validated here.
 */
import { z } from "zod";
import { StopReason, TaskError, TaskStatus } from "./task.ts";
import type { DeltaEvent, StepEvent } from "./events.ts";

// ---- client → server ----------------------------------------------------------------------
/** A client's own id for a request frame, echoed in its `ack` (or `error`) so it can match them. */
const RequestId = z.string().max(128).optional();
/** Limits of what a person sends into a task (steering text, answers, rejection reasons). */
export const MAX_HUMAN_TEXT_CHARS = 32_000;
export const MAX_REASON_CHARS = 2_000;
const CallId = z.string().min(1).max(256);

export const InputFrame = z.object({ type: z.literal("input"), text: z.string().min(1).max(MAX_HUMAN_TEXT_CHARS), request_id: RequestId });
export const ApproveFrame = z.object({ type: z.literal("approve"), call_id: CallId, request_id: RequestId });
export const RejectFrame = z.object({ type: z.literal("reject"), call_id: CallId, reason: z.string().max(MAX_REASON_CHARS).optional(), request_id: RequestId });
export const AnswerFrame = z.object({ type: z.literal("answer"), call_id: CallId, text: z.string().max(MAX_HUMAN_TEXT_CHARS), request_id: RequestId });

export const ClientFrame = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ping") }),
  z.object({ type: z.literal("cancel") }),
  InputFrame,
  ApproveFrame,
  RejectFrame,
  AnswerFrame,
]);
export type ClientFrame = z.infer<typeof ClientFrame>;
export const CLIENT_FRAME_TYPES = ["ping", "cancel", "input", "approve", "reject", "answer"] as const;

// ---- server → client ----------------------------------------------------------------------
export const ResultData = z.object({
  status: TaskStatus,
  task_id: z.string(),
  stop_reason: StopReason,
  output: z.string().optional(),
  total_steps: z.number().int().optional(),
  total_tokens: z.number().int().optional(),
  usage: z.object({ input_tokens: z.number().int(), output_tokens: z.number().int() }).optional(),
  cost_usd: z.number().optional(),
  /** The same object as the task's `error`; absent when that is null. */
  error: TaskError.optional(),
  /** The final answer parsed, when the agent has an `output_schema` (`output` is then its JSON text). */
  output_json: z.unknown().optional(),
});
export type ResultData = z.infer<typeof ResultData>;

export const StepFrame = z.object({
  type: z.literal("step"),
  seq: z.number().int().positive(),
  data: z.object({ event_type: z.string(), step: z.number().int(), data: z.unknown(), timestamp: z.string() }),
});
export const ResultFrame = z.object({ type: z.literal("result"), seq: z.number().int().positive(), data: ResultData });
export const ConnectedFrame = z.object({
  type: z.literal("connected"),
  task_id: z.string(),
  status: TaskStatus,
  last_seq: z.number().int().nonnegative(),
});
export const ErrorFrame = z.object({
  type: z.literal("error"),
  data: z.object({ message: z.string(), code: z.string().optional(), request_id: z.string().optional() }),
});
export const PongFrame = z.object({ type: z.literal("pong") });
/**
 * A request frame (`input`, `approve`, `reject`, `answer`) was accepted: it is durable now. What it
 * does shows in the log (`user_input` before the model's next step, `approval_decided`, `answer`).
 */
export const AckFrame = z.object({
  type: z.literal("ack"),
  of: z.enum(["input", "approve", "reject", "answer"]),
  request_id: z.string().optional(),
  /** `input`: the id of the accepted input (the `user_input` event's `data.id`). */
  input_id: z.string().optional(),
});
/** Live-only text or reasoning of the step in progress; no seq, never replayed. */
export const DeltaFrame = z.object({
  type: z.literal("delta"),
  step: z.number().int().positive(),
  data: z.object({ kind: z.enum(["text", "reasoning"]), text: z.string() }),
});

/**
 * Sent instead of events that retention pruned (see src/server/watch.ts `resyncFrame`): a snapshot
 * of the task; the stream goes on after `pruned_through`.
 */
export const ResyncFrame = z.object({
  type: z.literal("resync"),
  data: z.object({
    task_id: z.string(),
    status: TaskStatus,
    stop_reason: StopReason.nullable(),
    output: z.string().nullable(),
    error: TaskError.nullable(),
    last_seq: z.number().int().nonnegative(),
    pruned_through: z.number().int().nonnegative(),
    total_steps: z.number().int(),
    total_tokens: z.number().int(),
  }),
});

export const ServerFrame = z.discriminatedUnion("type", [ConnectedFrame, StepFrame, ResultFrame, DeltaFrame, ResyncFrame, ErrorFrame, PongFrame, AckFrame]);
export type ServerFrame = z.infer<typeof ServerFrame>;
export type StepFrame = z.infer<typeof StepFrame>;
export type ResultFrame = z.infer<typeof ResultFrame>;
export type ConnectedFrame = z.infer<typeof ConnectedFrame>;
export type DeltaFrame = z.infer<typeof DeltaFrame>;
export type ResyncFrame = z.infer<typeof ResyncFrame>;
export type ErrorFrame = z.infer<typeof ErrorFrame>;
export type AckFrame = z.infer<typeof AckFrame>;
export type PongFrame = z.infer<typeof PongFrame>;
/** A durable frame: it has a `seq` and is stored before it is published. */
export type DurableFrame = StepFrame | ResultFrame;

export function stepFrame(seq: number, event: StepEvent, timestamp: Date): StepFrame {
  return {
    type: "step",
    seq,
    data: { event_type: event.event_type, step: event.step, data: event.data, timestamp: isoString(timestamp) },
  };
}

/** The last timestamp formatted: a burst stamps many events within one millisecond (`toISOString` was ~2.5% of an event's CPU). */
let lastStamp = { ms: Number.NaN, iso: "" };
function isoString(date: Date): string {
  const ms = date.getTime();
  if (ms !== lastStamp.ms) lastStamp = { ms, iso: date.toISOString() };
  return lastStamp.iso;
}

export function deltaFrame(event: DeltaEvent): string {
  return JSON.stringify({ type: "delta", step: event.step, data: event.data });
}

export function resultFrame(seq: number, data: ResultData): ResultFrame {
  return { type: "result", seq, data };
}

const RESULT_PREFIX = '{"type":"result"';
/**
 * Whether a stored (serialised) frame is a task's `result`, without parsing it: every frame is built
 * with `type` as its first key (`resultFrame`, `stepFrame`), so the prefix is exact.
 */
export function isResultFrame(frame: string): boolean {
  return frame.startsWith(RESULT_PREFIX);
}

export function errorFrame(message: string, code?: string, requestId?: string): string {
  const data: { message: string; code?: string; request_id?: string } = { message };
  if (code) data.code = code;
  if (requestId !== undefined) data.request_id = requestId;
  return JSON.stringify({ type: "error", data });
}

export function ackFrame(of: z.infer<typeof AckFrame>["of"], requestId?: string, inputId?: string): string {
  return JSON.stringify({ type: "ack", of, ...(requestId === undefined ? {} : { request_id: requestId }), ...(inputId === undefined ? {} : { input_id: inputId }) });
}

export const PONG = JSON.stringify({ type: "pong" });
