/**
 * Frames shaped exactly like agentkit's for a `demo/bench` task (see src/protocol/frames.ts and
 * src/llm/bench-model.ts), built the way agentkit builds them: one object, one `JSON.stringify`
 * per frame, an ISO timestamp per frame. The bare pub/sub server publishes these, so both servers
 * send frames of the same shape and size (the clients report bytes per frame to show it).
 *
 * Also the client side's cheap frame inspection: the kind from one character, the latency stamp
 * `t` found by `indexOf` — no JSON.parse on the hot path.
 */

/** The three durable frames of step `step` (1-based), seq numbers starting at `firstSeq`. */
export function stepFrames(firstSeq: number, step: number, t: number, pad: string): [string, string, string] {
  const done = step - 1;
  const id = `b${done}`;
  const expression = `${done}+1`;
  return [
    JSON.stringify({
      type: "step",
      seq: firstSeq,
      data: { event_type: "usage", step, data: { input_tokens: 1, output_tokens: 1 }, timestamp: new Date().toISOString() },
    }),
    JSON.stringify({
      type: "step",
      seq: firstSeq + 1,
      data: {
        event_type: "tool_call",
        step,
        data: { id, name: "calculator", arguments: { expression, t, pad } },
        timestamp: new Date().toISOString(),
      },
    }),
    JSON.stringify({
      type: "step",
      seq: firstSeq + 2,
      data: {
        event_type: "tool_result",
        step,
        data: { id, name: "calculator", result: { expression, value: done + 1 } },
        timestamp: new Date().toISOString(),
      },
    }),
  ];
}

/** The closing frames of a task of `steps` steps: the last usage step, then the result. */
export function endFrames(firstSeq: number, steps: number, taskId: string): [string, string] {
  const step = steps + 1;
  return [
    JSON.stringify({
      type: "step",
      seq: firstSeq,
      data: { event_type: "usage", step, data: { input_tokens: 1, output_tokens: 1 }, timestamp: new Date().toISOString() },
    }),
    JSON.stringify({
      type: "result",
      seq: firstSeq + 1,
      data: {
        status: "completed",
        task_id: taskId,
        stop_reason: "final_answer",
        total_steps: step,
        total_tokens: step * 2,
        usage: { input_tokens: step, output_tokens: step },
        output: "done",
      },
    }),
  ];
}

export function connectedFrame(taskId: string, status: string, lastSeq: number): string {
  return JSON.stringify({ type: "connected", task_id: taskId, status, last_seq: lastSeq });
}

/** Durable frames of a `demo/bench` task of `steps` steps: 3 per step, a last usage, the result. */
export function framesOfTask(steps: number): number {
  return steps * 3 + 2;
}

/** `{"type":"` is 9 characters: the next one tells the frame kind apart. */
export const KIND_OFFSET = 9;
export const KIND_STEP = "s".charCodeAt(0);
export const KIND_RESULT = "r".charCodeAt(0);
export const KIND_CONNECTED = "c".charCodeAt(0);
export const KIND_ERROR = "e".charCodeAt(0);

/**
 * The production time `t` (ms since the epoch, fractional) of a tool_call frame, or NaN for any
 * other frame. `"t":` occurs in no other frame of a bench task (the padding is `x`s).
 */
export function stampOf(frame: string): number {
  const at = frame.indexOf('"t":', 40);
  return at === -1 ? Number.NaN : Number.parseFloat(frame.substring(at + 4, at + 40));
}
