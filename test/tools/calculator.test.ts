import { describe, expect, test } from "bun:test";
import { calculatorTool } from "../../src/tools/calculator.ts";
import { createCurrentTimeTool } from "../../src/tools/current-time.ts";
import { evaluateExpression, ExpressionError } from "../../src/tools/expression.ts";

describe("evaluateExpression", () => {
  const cases: [string, number][] = [
    ["1 + 2 * 3", 7],
    ["(1 + 2) * 3", 9],
    ["10 / 4", 2.5],
    ["10 % 4", 2],
    ["2 ^ 3 ^ 2", 512],
    ["2 ** 10", 1024],
    ["-2 ^ 2", -4],
    ["(-2) ^ 2", 4],
    ["--3", 3],
    ["2 * -3", -6],
    ["sqrt(16) + abs(-3)", 7],
    ["max(1, 5, 3) - min(4, 2)", 3],
    ["round(2.5) + floor(2.7) + ceil(2.1)", 8],
    ["1.5e3 + .5", 1500.5],
    ["2 * pi", 2 * Math.PI],
    ["ln(e)", 1],
    ["log(1000)", 3],
    ["  7  ", 7],
  ];
  for (const [expression, expected] of cases) {
    test(`${expression} = ${expected}`, () => {
      expect(evaluateExpression(expression)).toBeCloseTo(expected, 12);
    });
  }

  const failures: [string, string][] = [
    ["", "Unexpected end"],
    ["1 +", "Unexpected end"],
    ["(1 + 2", "Expected ')'"],
    ["1 2", "Unexpected input after expression"],
    ["1 / 0", "Division by zero"],
    ["5 % 0", "Division by zero"],
    ["foo(1)", "Unknown name 'foo'"],
    ["process.exit(1)", "Unexpected character '.'"],
    ["process", "Unknown name 'process'"],
    ["__proto__", "Unknown name"],
    ["constructor", "Unknown name"],
    ["1; 2", "Unexpected character ';'"],
    ["`x`", "Unexpected character"],
    ["sqrt(1, 2)", "takes 1 argument"],
    ["10 ^ 400", "not a finite number"],
    ["(".repeat(100) + "1" + ")".repeat(100), "nested too deeply"],
    ["-".repeat(200) + "1", "nested too deeply"],
    ["1+".repeat(600) + "1", "longer than"],
  ];
  for (const [expression, message] of failures) {
    test(`rejects ${JSON.stringify(expression.slice(0, 24))}`, () => {
      expect(() => evaluateExpression(expression)).toThrow(ExpressionError);
      expect(() => evaluateExpression(expression)).toThrow(message);
    });
  }
});

describe("built-in tools", () => {
  const signal = new AbortController().signal;

  test("calculator returns the expression and a value without float noise", async () => {
    expect(await calculatorTool.execute({ expression: "0.1 + 0.2" }, { abortSignal: signal })).toEqual({ expression: "0.1 + 0.2", value: 0.3 });
    expect(calculatorTool.inputSchema.safeParse({ expression: 3 }).success).toBe(false);
  });

  test("calculator: integers of up to 15 digits come back exact; longer ones and -0 as toPrecision(15) gives them", async () => {
    const value = async (expression: string) => ((await calculatorTool.execute({ expression }, { abortSignal: signal })) as { value: number }).value;
    expect(await value("123456789012345 + 0")).toBe(123456789012345);
    expect(await value("-999999999999999 * 1")).toBe(-999999999999999);
    expect(await value("2 ^ 53")).toBe(9007199254740990); // 9007199254740992 to 15 significant digits
    expect(Object.is(await value("0 * -1"), 0)).toBe(true);
    expect(await value("1 / 3")).toBe(0.333333333333333);
  });

  test("current_time reports the injected clock in UTC and in a zone; rejects an unknown zone", async () => {
    const tool = createCurrentTimeTool(() => new Date("2026-03-01T12:00:00Z"));
    const utc = (await tool.execute({}, { abortSignal: signal })) as Record<string, unknown>;
    expect(utc).toMatchObject({ iso: "2026-03-01T12:00:00.000Z", timezone: "UTC" });
    const tokyo = (await tool.execute({ timezone: "Asia/Tokyo" }, { abortSignal: signal })) as Record<string, string>;
    expect(tokyo.local).toContain("21:00:00");
    await expect(tool.execute({ timezone: "Mars/Olympus" }, { abortSignal: signal })).rejects.toThrow("Unknown time zone");
  });
});
