/** Tools for tests: one that waits for the test to release it, one that ignores abort. */
import { z } from "zod";
import { defineTool } from "../../src/tools/tool.ts";

export interface GateTool {
  tool: ReturnType<typeof defineTool>;
  /** Resolves when the tool starts running (once per call). */
  started: Promise<void>;
  release(): void;
  /** Set when the tool's abortSignal fired. */
  readonly abortedWith: unknown;
  readonly calls: number;
}

/** `wait`: blocks until `release()`, honouring its abort signal. */
export function createGateTool(name = "wait"): GateTool {
  const started = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  const state = { abortedWith: undefined as unknown, calls: 0 };
  const tool = defineTool({
    name,
    description: "Waits until the test releases it",
    inputSchema: z.object({}),
    async execute(_input, { abortSignal }) {
      state.calls++;
      started.resolve();
      abortSignal.addEventListener("abort", () => (state.abortedWith = abortSignal.reason), { once: true });
      await new Promise<void>((resolve, reject) => {
        released.promise.then(resolve);
        abortSignal.addEventListener("abort", () => reject(abortSignal.reason), { once: true });
      });
      return "released";
    },
  });
  return {
    tool,
    started: started.promise,
    release: () => released.resolve(),
    get abortedWith() {
      return state.abortedWith;
    },
    get calls() {
      return state.calls;
    },
  };
}

/** `stubborn`: never finishes and ignores its abort signal entirely. */
export function createStubbornTool() {
  const started = Promise.withResolvers<void>();
  const tool = defineTool({
    name: "stubborn",
    description: "Never returns, ignores abort",
    inputSchema: z.object({}),
    execute: () => {
      started.resolve();
      return new Promise<never>(() => {});
    },
  });
  return { tool, started: started.promise };
}
