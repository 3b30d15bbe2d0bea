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

/** The demo provider's models (`demo` alone is `demo/react`). */
export const DEMO_MODELS = ["react", "slow", "bench"] as const;

function createDemoProviderModel(name: string): ChatModel {
  switch (name) {
    case "react":
      return createDemoModel({ wordDelayMs: 0 });
    case "slow":
      return createDemoModel({ wordDelayMs: 150 });
    case "bench":
      return createBenchModel();
    default:
      // Taken for demo/react before: a typo (`demo/slwo`) ran the wrong model without a word.
      throw new Error(`Unknown demo model 'demo/${name}'; known: ${DEMO_MODELS.map((model) => `demo/${model}`).join(", ")}`);
  }
}

export function createModelResolver(factories: Record<string, ModelFactory> = {}): ModelResolver {
  const all: Record<string, ModelFactory> = {
    demo: createDemoProviderModel,
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
