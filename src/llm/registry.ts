/**
 * Resolves an agent's model string (`provider/model`) to a ChatModel.
 * Only the built-in `demo` provider ships today; real providers plug in here.
 */
import type { ChatModel } from "./model.ts";
import { createDemoModel } from "./demo-model.ts";

export interface ModelResolver {
  resolve(modelId: string): ChatModel;
  /** Providers this build knows, for error messages. */
  readonly providers: readonly string[];
}

export type ModelFactory = (modelName: string) => ChatModel;

export function createModelResolver(factories: Record<string, ModelFactory> = {}): ModelResolver {
  const all: Record<string, ModelFactory> = {
    demo: (name) => createDemoModel({ wordDelayMs: name === "slow" ? 150 : 0 }),
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
