/**
 * A tiny leveled logger writing one line per entry to stderr. Never log secrets.
 *
 * Two formats: `text` (`<ISO time> <level> <message> <fields as JSON>`, the default) and `json`
 * (`AGENTKIT_LOG_FORMAT=json`: every line one JSON object `{time, level, msg, ...fields}`, for log
 * collectors). A field named like a core key (`time`, `level`, `msg`) is written as `field.<name>`;
 * an Error is written as its message; a value JSON cannot hold (a BigInt, a cycle) as its string.
 */

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
export type LogFormat = "text" | "json";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export function createLogger(
  level: LogLevel = "info",
  write: (line: string) => void = (line) => process.stderr.write(line + "\n"),
  format: LogFormat = "text",
): Logger {
  const threshold = ORDER[level];
  const log = (entryLevel: Exclude<LogLevel, "silent">) => (message: string, fields?: Record<string, unknown>) => {
    if (ORDER[entryLevel] < threshold) return;
    const time = new Date().toISOString();
    if (format === "json") {
      const entry: Record<string, unknown> = { time, level: entryLevel, msg: message };
      if (fields) for (const key of Object.keys(fields)) entry[key in entry ? `field.${key}` : key] = fields[key];
      write(stringify(entry));
      return;
    }
    const extra = fields && Object.keys(fields).length ? " " + stringify(fields) : "";
    write(`${time} ${entryLevel.padEnd(5)} ${message}${extra}`);
  };
  return { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

/** JSON that never throws: Errors as their message, BigInts as strings, a cycle as "[Circular]". */
function stringify(value: Record<string, unknown>): string {
  try {
    return JSON.stringify(value, replacer);
  } catch {
    const seen = new WeakSet<object>();
    return JSON.stringify(value, (key, item: unknown) => {
      const replaced = replacer(key, item);
      if (typeof replaced === "object" && replaced !== null) {
        if (seen.has(replaced)) return "[Circular]";
        seen.add(replaced);
      }
      return replaced;
    });
  }
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) return value.message;
  if (typeof value === "bigint") return value.toString();
  return value;
}

export const silentLogger: Logger = createLogger("silent");
