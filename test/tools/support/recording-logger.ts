/** A Logger that records every entry, for tests that wait on what a component logs. */
import type { Logger } from "../../../src/lib/logger.ts";
import { createEventLog, type EventLog } from "./event-log.ts";

export interface LogEntry {
  level: "debug" | "info" | "warn" | "error";
  message: string;
  fields: Record<string, unknown>;
}

export function createRecordingLogger(): { logger: Logger; log: EventLog<LogEntry> } {
  const log = createEventLog<LogEntry>();
  const entry = (level: LogEntry["level"]) => (message: string, fields: Record<string, unknown> = {}) =>
    log.push({ level, message, fields });
  return { logger: { debug: entry("debug"), info: entry("info"), warn: entry("warn"), error: entry("error") }, log };
}

/** Matches the stderr line a stdio fixture server prints for `event` (see fixtures/stdio-server.ts). */
export function fixtureEvent(server: string, event: string): (entry: LogEntry) => boolean {
  return (entry) => entry.message === "MCP server stderr" && entry.fields.server === server && entry.fields.line === `fixture-event ${event}`;
}
