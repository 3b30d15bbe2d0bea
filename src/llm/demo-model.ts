/**
 * The built-in `demo` model: deterministic, offline, and a real ReAct driver. It reads the last
 * user message and
 *   - arithmetic ("what is 12 * (3 + 4)?") → calls `calculator`, then answers with the value;
 *   - date or time ("what time is it in Europe/Paris?") → calls `current_time`, then answers;
 *   - "ask me …" (when the agent has `ask_user`) → asks the user that question, then repeats the answer;
 *   - "use tool <name> with <json>" (when the agent has that tool: e.g. one from a tools module) →
 *     calls it with that JSON as its arguments (`{}` without "with …"), then quotes its result;
 *   - anything else → answers directly.
 * A tool error is read back and explained, so the loop's error path is visible too.
 * Text is streamed word by word, like a real provider.
 */
import { sleep } from "../lib/abort.ts";
import type { ChatMessage, ChatModel, ModelRequest, ModelStreamPart, ToolCallRequest } from "./model.ts";

/**
 * "use tool <name>" or "use tool <name> with <arguments, as JSON>": the rest of the message is the
 * arguments. Matched on the text without its trailing space and one trailing `.`/`!` (`useToolIn`):
 * every pattern here is linear in the text (a task's input is the client's: a pattern that
 * backtracks held the event loop for 0.2 s on 10,000 characters of a hostile input).
 */
const USE_TOOL = /\buse (?:the )?tool ([A-Za-z0-9_-]{1,64})(?:\s+with\s+([\s\S]*))?$/i;
const TIME_WORDS = /\b(time|date|day|today|now|clock|year|month)\b/i;
const TIMEZONE = /\b([A-Z][A-Za-z_]+\/[A-Z][A-Za-z_]+(?:\/[A-Z][A-Za-z_]+)?|UTC)\b/;
// Runs of arithmetic characters and function names; the longest run with a digit and an operator wins.
const ARITHMETIC = /(?:sqrt|abs|round|floor|ceil|sin|cos|tan|ln|log|exp|min|max|pi|[\d.+\-*/%^(),\s])+/gi;

export interface DemoModelOptions {
  /** Delay before each streamed word, to watch streaming by eye. Default 0. */
  wordDelayMs?: number;
}

export function createDemoModel(options: DemoModelOptions = {}): ChatModel {
  const wordDelayMs = options.wordDelayMs ?? 0;

  return {
    id: "demo/react",
    async *stream(request: ModelRequest): AsyncGenerator<ModelStreamPart> {
      request.abortSignal.throwIfAborted();
      const toolNames = new Set(request.tools.map((tool) => tool.name));
      // Call ids count the calls already in the conversation: unique within a task, also when it
      // is resumed by a restarted server (a counter per process started again at call_1).
      let calls = request.messages.reduce((sum, message) => sum + (message.role === "assistant" ? (message.toolCalls?.length ?? 0) : 0), 0);
      const plan = decide(request.messages, toolNames, () => `call_${++calls}`);
      const inputTokens = estimateTokens(request.system ?? "") + request.messages.reduce((sum, m) => sum + estimateTokens(m.content), 0);
      let outputTokens = 0;
      if (plan.text) {
        const words = plan.text.split(/(?<= )/);
        for (const word of words) {
          if (wordDelayMs > 0) await sleep(wordDelayMs, request.abortSignal);
          request.abortSignal.throwIfAborted();
          outputTokens += estimateTokens(word);
          yield { type: "text-delta", text: word };
        }
      }
      if (plan.call) {
        outputTokens += estimateTokens(plan.call.arguments);
        yield { type: "tool-call", call: plan.call };
      }
      yield {
        type: "finish",
        finishReason: plan.call ? "tool-calls" : "stop",
        usage: { inputTokens, outputTokens },
      };
    },
  };
}

interface Plan {
  text: string;
  call?: ToolCallRequest;
}

function decide(messages: readonly ChatMessage[], tools: ReadonlySet<string>, nextId: () => string): Plan {
  const last = messages.at(-1);
  if (last?.role === "tool") return answerFromTool(last);

  const question = lastUserText(messages);
  const use = USE_TOOL.exec(trimEndOf(question.trimEnd(), ".!", 1));
  if (use && tools.has(use[1]!)) {
    return {
      text: `I'll use the ${use[1]} tool.`,
      call: { id: nextId(), name: use[1]!, arguments: use[2]?.trim() || "{}" },
    };
  }
  const ask = /\bask me\b[\s:,]*(.*)$/is.exec(question);
  if (ask && tools.has("ask_user")) {
    const asked = trimEndOf(ask[1]!.trim(), ".!") || "What should I do?";
    return {
      text: "I need to ask you something.",
      call: { id: nextId(), name: "ask_user", arguments: JSON.stringify({ question: asked.endsWith("?") ? asked : `${asked}?` }) },
    };
  }
  const expression = findArithmetic(question);
  if (expression && tools.has("calculator")) {
    return {
      text: `I'll compute ${expression} with the calculator.`,
      call: { id: nextId(), name: "calculator", arguments: JSON.stringify({ expression }) },
    };
  }
  if (TIME_WORDS.test(question) && tools.has("current_time")) {
    const timezone = TIMEZONE.exec(question)?.[1];
    return {
      text: "Let me check the clock.",
      call: { id: nextId(), name: "current_time", arguments: JSON.stringify(timezone ? { timezone } : {}) },
    };
  }
  if (question.trim() === "") return { text: "You sent an empty message. Ask me something!" };
  return {
    text:
      `You said: "${question.trim()}". I am agentkit's built-in demo model: I can do arithmetic ` +
      `with the calculator tool and tell the date and time. Configure a real provider for anything else.`,
  };
}

function answerFromTool(message: Extract<ChatMessage, { role: "tool" }>): Plan {
  if (message.isError) return { text: `The ${message.toolName} tool failed: ${message.content}` };
  if (message.toolName === "ask_user") return { text: `You answered: ${message.content}` };
  try {
    const result = JSON.parse(message.content) as Record<string, unknown>;
    if (message.toolName === "calculator") return { text: `${String(result.expression)} = ${String(result.value)}` };
    if (message.toolName === "ask_user") return { text: `You answered: ${message.content}` };
    if (message.toolName === "current_time") {
      return { text: `It is ${String(result.local)} (${String(result.iso)}).` };
    }
  } catch {
    // Not JSON: fall through and quote the observation as it is.
  }
  return { text: `The ${message.toolName} tool returned: ${message.content}` };
}

function lastUserText(messages: readonly ChatMessage[]): string {
  for (let index = messages.length - 1; index >= 0; index--) {
    const message = messages[index]!;
    if (message.role === "user") return message.content;
  }
  return "";
}

/** The longest run of arithmetic that has a digit and an operator between operands, if any. */
export function findArithmetic(text: string): string | undefined {
  let best: string | undefined;
  for (const match of text.matchAll(ARITHMETIC)) {
    const candidate = trimEndOf(trimStartOf(match[0], ",) \t\n\r"), ",( \t\n\r").trim();
    if (!/\d/.test(candidate)) continue;
    if (!/[\d)a-z]\s*[-+*/%^]\s*[\d(a-z.]|[a-z]\s*\(/i.test(candidate)) continue;
    if (!best || candidate.length > best.length) best = candidate;
  }
  return best;
}

/** `text` without `chars` at its start. */
function trimStartOf(text: string, chars: string): string {
  let start = 0;
  while (start < text.length && chars.includes(text[start]!)) start++;
  return text.slice(start);
}

/** `text` without up to `most` of `chars` at its end (a `[…]+$` pattern backtracks: quadratic). */
function trimEndOf(text: string, chars: string, most = Number.POSITIVE_INFINITY): string {
  let end = text.length;
  while (end > 0 && text.length - end < most && chars.includes(text[end - 1]!)) end--;
  return text.slice(0, end);
}

function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}
