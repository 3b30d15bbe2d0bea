/**
 * Anthropic refuses a forced tool choice (`tool_choice` `any` or `tool`) while the model thinks,
 * whatever the kind of thinking: a budget (`enabled`), `adaptive`, or `between_tools`. The AI SDK
 * relaxes the choice only for budget thinking and for the models its catalog marks as refusing
 * it — so `reasoning_effort` on a model with adaptive thinking (claude-opus-4-6, claude-sonnet-4-6,
 * and every `claude-…` id the SDK does not know) with `tool_choice: "required"` went out as
 * `thinking: {type: "adaptive"}` + `tool_choice: {type: "any"}`, and Anthropic answered 400.
 *
 * This wraps the provider's `fetch` and relaxes the choice on the request as it is sent, the way
 * the SDK does for budget thinking: `any` becomes `auto`, and `tool` becomes `auto` with only that
 * tool offered. Deciding from the body rather than from our settings keeps it right however the
 * thinking was asked for (`reasoning_effort`, `provider_options.anthropic.thinking`, a model the
 * SDK makes think) and whatever the SDK's catalog says next version.
 */

/** The thinking types with which Anthropic accepts only `auto` or `none` as the tool choice. */
const THINKING_TYPES: ReadonlySet<unknown> = new Set(["enabled", "adaptive", "between_tools"]);

interface MessagesBody {
  thinking?: { type?: unknown };
  tool_choice?: { type?: unknown; name?: unknown; disable_parallel_tool_use?: unknown };
  tools?: Array<{ name?: unknown }>;
}

/**
 * A Messages request body with its forced tool choice relaxed when it thinks; any other body as it is.
 * @example
 * relaxForcedToolChoice({ thinking: { type: "adaptive" }, tool_choice: { type: "any" } })
 * // → { thinking: { type: "adaptive" }, tool_choice: { type: "auto" } }
 */
export function relaxForcedToolChoice<Body extends MessagesBody>(body: Body): Body {
  const choice = body.tool_choice;
  if (!THINKING_TYPES.has(body.thinking?.type) || (choice?.type !== "any" && choice?.type !== "tool")) return body;
  const auto = {
    type: "auto",
    ...(choice.disable_parallel_tool_use !== undefined ? { disable_parallel_tool_use: choice.disable_parallel_tool_use } : {}),
  };
  if (choice.type === "any") return { ...body, tool_choice: auto };
  return { ...body, tool_choice: auto, tools: body.tools?.filter((tool) => tool.name === choice.name) };
}

/** A `tool_choice` object of type `any` or `tool` (its keys in any order; it holds no nested object). */
const FORCED_CHOICE = /"tool_choice"\s*:\s*\{[^}]*"type"\s*:\s*"(?:any|tool)"/;

/** `fetch` (default: the global one, looked up per call) applying `relaxForcedToolChoice` to every JSON body it sends. */
export function relaxingForcedToolChoice(base?: typeof fetch): typeof fetch {
  const relaxing = (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    const fetchFunction = base ?? globalThis.fetch;
    // Parsed only when it may need relaxing: a step's body carries the whole conversation (often
    // hundreds of KB), and most have no forced choice, or no thinking.
    if (typeof init?.body !== "string" || !FORCED_CHOICE.test(init.body) || !init.body.includes('"thinking"')) return fetchFunction(input, init);
    let body: unknown;
    try {
      body = JSON.parse(init.body);
    } catch {
      // Not JSON: not a Messages request; sent as it is.
      return fetchFunction(input, init);
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) return fetchFunction(input, init);
    const relaxed = relaxForcedToolChoice(body as MessagesBody);
    return fetchFunction(input, relaxed === body ? init : { ...init, body: JSON.stringify(relaxed) });
  };
  return Object.assign(relaxing, { preconnect: (base ?? globalThis.fetch).preconnect }) as typeof fetch;
}
