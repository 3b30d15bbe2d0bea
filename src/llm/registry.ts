/**
 * Resolves an agent's model string (`provider/model`) to a ChatModel.
 * `demo/react` (and `demo/slow`, words 150 ms apart) is the offline demo model, `demo/bench` the
 * benchmark model; real providers (src/llm/providers) are merged in by the caller.
 */
import type { ChatModel } from "./model.ts";
import { createBenchModel } from "./bench-model.ts";
import { createDemoModel } from "./demo-model.ts";

export interface ModelResolver {
  resolve(modelId: string): ChatModel;
  /** Providers this build knows, for error messages. */
  readonly providers: readonly string[];
}

export type ModelFactory = (modelName: string) => ChatModel;

export function createModelResolver(factories: Record<string, ModelFactory> = {}): ModelResolver {
  const all: Record<string, ModelFactory> = {
    demo: (name) => (name === "bench" ? createBenchModel() : createDemoModel({ wordDelayMs: name === "slow" ? 150 : 0 })),
    ...factories,
  };
  return {
    providers: Object.keys(all),
    resolve(modelId) {
      const [provider, ...rest] = modelId.split("/");
      const factory = all[provider ?? ""];
      if (!factory) {
        throw new Error(`Unknown model provider '${provider}' in '${modelId}'; known: ${Object.keys(all).join(", ")}`);
      }
      return factory(rest.join("/") || "react");
    },
  };
}
