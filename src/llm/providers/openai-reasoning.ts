/**
 * Which OpenAI models reason, told apart as @ai-sdk/openai itself does (its model catalog's
 * `reasoning.support`, built from the model id): the o-series and gpt-5 and later reason, except
 * the `gpt-5-chat…` models; every other `gpt-…` (gpt-4.1, gpt-4o…) does not. Any other id — a
 * fine-tune (`ft:…`), a model behind an OpenAI-compatible proxy at OPENAI_BASE_URL — is unknown.
 *
 * Why it matters: Chat Completions answers 400 to `reasoning_effort` on a model that does not
 * reason, and the SDK sends it whatever the model. A test pins this rule to the SDK's catalog.
 */

/**
 * `true` when the model reasons, `false` when it is known not to, `undefined` when unknown.
 * @example
 * openAiModelReasons("o4-mini"); // true
 * openAiModelReasons("gpt-4.1-mini"); // false
 * openAiModelReasons("ft:gpt-4.1-mini:acme::abc123"); // undefined
 */
export function openAiModelReasons(modelId: string): boolean | undefined {
  if (/^o\d+(?:-|$)/.test(modelId)) return true;
  const gpt = /^gpt-(\d+)(?:\.(\d+))?(?:-(.+))?$/.exec(modelId);
  if (gpt) {
    const [, major, minor, variant] = gpt;
    const chatModel = minor === undefined && (variant?.startsWith("chat") ?? false);
    return Number(major) >= 5 && !chatModel;
  }
  if (/^gpt-4o(?:-|$)/.test(modelId)) return false;
  return undefined;
}
