export * from "./tool.ts";
export * from "./registry.ts";
export { calculatorTool } from "./calculator.ts";
export { createCurrentTimeTool } from "./current-time.ts";
export { evaluateExpression, ExpressionError } from "./expression.ts";
export { createHttpFetchTool, HttpFetchOptions } from "./http-fetch.ts";
