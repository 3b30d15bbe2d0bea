/** Built-in `current_time` tool: the current date and time, optionally in an IANA time zone. */
import { z } from "zod";
import { defineTool } from "./tool.ts";

export function createCurrentTimeTool(now: () => Date = () => new Date()) {
  return defineTool({
    name: "current_time",
    // Run again after an interruption it reads the clock again: a newer time, no side effect.
    idempotent: true,
    description: "Returns the current date and time (ISO 8601 UTC, and local time in the given IANA time zone).",
    inputSchema: z.object({
      timezone: z.string().min(1).max(64).optional().describe("IANA time zone, e.g. Europe/Paris; default UTC"),
    }),
    async execute({ timezone }) {
      const date = now();
      const zone = timezone ?? "UTC";
      let local: string;
      try {
        local = new Intl.DateTimeFormat("en-GB", {
          timeZone: zone,
          dateStyle: "full",
          timeStyle: "long",
        }).format(date);
      } catch {
        throw new Error(`Unknown time zone '${zone}'`);
      }
      return { iso: date.toISOString(), timezone: zone, local, unix_ms: date.getTime() };
    },
  });
}
