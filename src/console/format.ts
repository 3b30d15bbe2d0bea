/** Formatting for the console: JSON, times, tokens and cost. Pure functions, no DOM. */

/** Pretty JSON for arguments and results; a string stays as it is. */
export function json(value: unknown): string {
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

/** One line of JSON (for previews). */
export function compact(value: unknown, max = 120): string {
  let text: string;
  try {
    text = typeof value === "string" ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function time(iso: string | null | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const today = new Date();
  return date.toDateString() === today.toDateString() ? date.toLocaleTimeString() : date.toLocaleString();
}

export function tokens(count: number): string {
  return count.toLocaleString("en-US");
}

export function cost(usd: number | null | undefined): string {
  if (usd === null || usd === undefined) return "";
  return usd < 0.01 ? `$${usd.toFixed(6)}` : `$${usd.toFixed(4)}`;
}

export function excerpt(text: string, max = 90): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

const TERMINAL = new Set(["completed", "failed", "cancelled", "timed_out"]);

export function isTerminalStatus(status: string): boolean {
  return TERMINAL.has(status);
}

/** Statuses in which a task still reads messages (steering). */
export function takesInput(status: string): boolean {
  return status === "running" || status === "waiting" || status === "queued";
}
