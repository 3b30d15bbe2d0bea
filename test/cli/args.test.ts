/** The command line of the client commands (serve's and healthcheck's: test/config/config.test.ts). */
import { expect, test } from "bun:test";
import { parseCommand, USAGE, UsageError } from "../../src/cli/args.ts";
import { OPEN_PATHS } from "../../src/server/app.ts";

test("client commands and their options", () => {
  expect(parseCommand(["run", "What is 17*23?"])).toEqual({ kind: "run", input: "What is 17*23?", json: false, connection: { flags: {} } });
  expect(parseCommand(["run", "What", "is", "2+2?", "--agent", "a", "--thread", "t", "--json", "--url", "http://h:9/", "--api-key-file", "/k"])).toEqual({
    kind: "run",
    input: "What is 2+2?",
    agent: "a",
    thread: "t",
    json: true,
    connection: { url: "http://h:9/", apiKeyFile: "/k", flags: {} },
  });
  expect(parseCommand(["watch", "abc", "--after", "5", "--port", "9000", "--host", "0.0.0.0", "--data-dir", "/d"])).toEqual({
    kind: "watch",
    taskId: "abc",
    after: 5,
    json: false,
    connection: { flags: { port: "9000", host: "0.0.0.0", dataDir: "/d" } },
  });
  expect(parseCommand(["tasks", "--status", "running", "--limit", "100", "--json"])).toEqual({ kind: "tasks", status: "running", limit: 100, json: true, connection: { flags: {} } });
  expect(parseCommand(["cancel", "abc"])).toEqual({ kind: "cancel", taskId: "abc", json: false, connection: { flags: {} } });
  expect(parseCommand(["agents", "--json"])).toEqual({ kind: "agents", json: true, connection: { flags: {} } });
  // Input that starts with a dash, after --.
  expect(parseCommand(["run", "--", "-5 + 3"])).toMatchObject({ kind: "run", input: "-5 + 3" });
});

test("--help of a command; the server's commands are unchanged", () => {
  expect(parseCommand(["run", "--help"])).toEqual({ kind: "help", command: "run" });
  expect(parseCommand(["--help", "tasks"])).toEqual({ kind: "help", command: "tasks" });
  expect(parseCommand(["-h"])).toEqual({ kind: "help" });
  expect(parseCommand(["--port", "9000"])).toEqual({ kind: "serve", flags: { port: "9000" } });
  expect(parseCommand(["healthcheck", "--url", "http://x/health"])).toEqual({ kind: "healthcheck", url: "http://x/health", flags: {} });
});

test("compact: the data dir (and a database URL, to say it does not apply), its own --help; nothing else", () => {
  expect(parseCommand(["compact"])).toEqual({ kind: "compact", flags: {} });
  expect(parseCommand(["compact", "--data-dir", "/d", "--database-url", "postgres://h/db"])).toEqual({ kind: "compact", flags: { dataDir: "/d", databaseUrl: "postgres://h/db" } });
  expect(parseCommand(["compact", "--help"])).toEqual({ kind: "help", command: "compact" });
  for (const argv of [["compact", "--port", "9000"], ["compact", "now"]]) {
    try {
      parseCommand(argv);
      throw new Error("parsed");
    } catch (error) {
      expect(error).toBeInstanceOf(UsageError);
      expect((error as UsageError).command).toBe("compact");
    }
  }
  expect(USAGE).toContain("agentkit compact [--data-dir DIR]");
});

test("usage errors name the command whose help to read", () => {
  const error = (argv: string[]) => {
    try {
      parseCommand(argv);
    } catch (caught) {
      expect(caught).toBeInstanceOf(UsageError);
      return { message: (caught as UsageError).message, command: (caught as UsageError).command };
    }
    throw new Error(`no error for ${argv.join(" ")}`);
  };
  expect(error(["run"])).toEqual({ message: 'run needs the task\'s input, e.g. agentkit run "What is 17*23?"', command: "run" });
  expect(error(["watch", "a", "b"])).toEqual({ message: "unexpected argument 'b'", command: "watch" });
  expect(error(["watch", "a", "--after", "-1"])).toEqual({ message: "--after must be a whole number from 0 to 9007199254740991", command: "watch" });
  // A negative number is the option's value (judged by its range), not an option of its own.
  expect(parseCommand(["--port", "-1"])).toEqual({ kind: "serve", flags: { port: "-1" } });
  expect(parseCommand(["-p", "-5"])).toEqual({ kind: "serve", flags: { port: "-5" } });
  // … but not after --: those are the input's words, as given.
  expect(parseCommand(["run", "--", "--limit", "-5"])).toMatchObject({ kind: "run", input: "--limit -5" });
  // An option given twice: one of the two is meant (the last one won silently).
  expect(error(["--port", "1", "--port", "2"])).toEqual({ message: "--port is given more than once", command: undefined });
  expect(error(["run", "x", "--agent", "a", "--agent", "b"])).toEqual({ message: "--agent is given more than once", command: "run" });
  expect(error(["watch", "a", "--after", "x"]).message).toBe("--after must be a whole number from 0 to 9007199254740991");
  expect(error(["tasks", "--limit", "101"]).message).toBe("--limit must be a whole number from 1 to 100");
  expect(error(["tasks", "--status", "done"]).message).toStartWith("--status must be one of queued, running, waiting");
  expect(error(["cancel"]).message).toBe("cancel needs a task id: agentkit cancel <task id>");
  expect(error(["agents", "extra"]).message).toBe("unexpected argument 'extra'");
  expect(error(["agents", "--agent", "x"])).toEqual({ message: "--agent is not an option of agents", command: "agents" });
  expect(error(["serve", "--json"])).toEqual({ message: "--json is not an option of serve", command: undefined });
  expect(error(["serve", "--url", "http://x"]).message).toBe("--url is an option of healthcheck, not of serve");
  expect(error(["healthcheck", "--agent", "x"]).message).toBe("--agent is not an option of healthcheck");
  expect(error(["run", "x", "--config", "c.json"]).message).toBe("--config is not an option of run");
  expect(error(["agents", "--url", "localhost:8000"]).message).toStartWith("--url must be an http:// or https:// URL");
});

test("--help: AGENTKIT_API_KEY names every open route (the key is needed on all the others)", () => {
  const about = USAGE.slice(USAGE.indexOf("  AGENTKIT_API_KEY "), USAGE.indexOf("  AGENTKIT_API_KEYS "));
  expect(about).not.toContain("every route but /health");
  // Each open path by its last segment (`/` for the console itself).
  for (const path of OPEN_PATHS) expect(about, path).toContain(path === "/" ? "/," : path.split("/").at(-1)!);
});
