/**
 * The WebSocket wire protocol (the seed's, extended, never broken). Server frames are built here
 * and serialised once; client frames are validated here.
 */
import { z } from "zod";
import { StopReason, TaskError, TaskStatus } from "./task.ts";
import type { DeltaEvent, StepEvent } from "./events.ts";

// ---- client → server ----------------------------------------------------------------------
export const ClientFrame = z.discriminatedUnion("type", [
  z.object({ type: z.literal("ping") }),
  z.object({ type: z.literal("cancel") }),
]);
export type ClientFrame = z.infer<typeof ClientFrame>;

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
  data: z.object({ message: z.string(), code: z.string().optional() }),
});
export const PongFrame = z.object({ type: z.literal("pong") });
/** Live-only text or reasoning of the step in progress; no seq, never replayed. */
export const DeltaFrame = z.object({
  type: z.literal("delta"),
  step: z.number().int().positive(),
  data: z.object({ kind: z.enum(["text", "reasoning"]), text: z.string() }),
});

export const ServerFrame = z.discriminatedUnion("type", [ConnectedFrame, StepFrame, ResultFrame, DeltaFrame, ErrorFrame, PongFrame]);
export type ServerFrame = z.infer<typeof ServerFrame>;
export type StepFrame = z.infer<typeof StepFrame>;
export type ResultFrame = z.infer<typeof ResultFrame>;
/** A durable frame: it has a `seq` and is stored before it is published. */
export type DurableFrame = StepFrame | ResultFrame;

export function stepFrame(seq: number, event: StepEvent, timestamp: Date): StepFrame {
  return {
    type: "step",
    seq,
    data: { event_type: event.event_type, step: event.step, data: event.data, timestamp: timestamp.toISOString() },
  };
}

export function deltaFrame(event: DeltaEvent): string {
  return JSON.stringify({ type: "delta", step: event.step, data: event.data });
}

export function resultFrame(seq: number, data: ResultData): ResultFrame {
  return { type: "result", seq, data };
}

export function errorFrame(message: string, code?: string): string {
  return JSON.stringify({ type: "error", data: code ? { message, code } : { message } });
}

export const PONG = JSON.stringify({ type: "pong" });
