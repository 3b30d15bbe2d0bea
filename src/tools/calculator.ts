/** Built-in `calculator` tool: evaluates arithmetic with a safe parser (see expression.ts). */
import { z } from "zod";
import { defineTool } from "./tool.ts";
import { evaluateExpression } from "./expression.ts";

export const calculatorTool = defineTool({
  name: "calculator",
  description:
    "Evaluates an arithmetic expression. Supports + - * / % ^, parentheses, pi, e and " +
    "sqrt abs round floor ceil sin cos tan ln log exp min max.",
  idempotent: true,
  inputSchema: z.object({ expression: z.string().min(1).max(1000).describe("e.g. (2 + 3) * 4 ^ 2") }),
  async execute({ expression }) {
    const value = evaluateExpression(expression);
    // Trim binary floating-point noise (0.1 + 0.2) without hiding real precision. An integer of up
    // to 15 digits is what toPrecision(15) would give back (-0 becomes 0 either way), without its cost.
    return { expression, value: Number.isInteger(value) && Math.abs(value) < 1e15 ? value + 0 : Number(value.toPrecision(15)) };
  },
});
