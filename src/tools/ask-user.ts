/**
 * `ask_user`: the model asks the person behind the task a question. Opt-in (list it in an agent's
 * `tools`). A call never runs here: the engine sees it is a question (`QUESTION_TOOLS`), yields a
 * durable `question` event and the task waits (`waiting`) until someone answers
 * (`{"type":"answer"}` or `POST /tasks/:id/answers`); the answer becomes the call's result.
 */
import { z } from "zod";
import { defineTool, ToolError } from "./tool.ts";

export const ASK_USER = "ask_user";

export const askUserTool = defineTool({
  name: ASK_USER,
  description:
    "Ask the user a question and wait for their answer. Use it when you need information or a choice only the user can give; " +
    "the answer is returned as text.",
  inputSchema: z.strictObject({ question: z.string().min(1).max(4000).describe("The question, as the user should read it") }),
  async execute() {
    // The engine holds every call of a question tool for a person; reaching this is a bug.
    throw new ToolError("not_runnable", "ask_user waits for the user's answer and cannot be run directly", false);
  },
});

/** Tools whose calls are questions to the user. */
export const QUESTION_TOOLS: ReadonlySet<string> = new Set([ASK_USER]);
