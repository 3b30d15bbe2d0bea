import { expect, test } from "bun:test";
import { parseCommand } from "../../src/cli/args.ts";
import { loadConfig } from "../../src/config/config.ts";

test("defaults, then environment, then flags", () => {
  expect(loadConfig({ env: {} })).toMatchObject({ port: 8000, host: "127.0.0.1", dataDir: "./agentkit-data", heartbeatMs: 60_000 });
  expect(loadConfig({ env: { PORT: "9000", AGENTKIT_DATA_DIR: "/d", AGENTKIT_API_KEY: "secret-key" } })).toMatchObject({
    port: 9000,
    dataDir: "/d",
    apiKey: "secret-key",
  });
  expect(loadConfig({ env: { PORT: "9000" }, flags: { port: "9100" } }).port).toBe(9100);
});

test("a bad value names its source", () => {
  expect(() => loadConfig({ env: { PORT: "eighty" } })).toThrow(/^invalid configuration: PORT: /);
  expect(() => loadConfig({ env: {}, flags: { port: "70000" } })).toThrow(/^invalid configuration: --port: /);
  // Named as the flag is spelt (--max-concurrent sets maxConcurrentTasks).
  expect(() => loadConfig({ env: {}, flags: { maxConcurrentTasks: "0" } })).toThrow(/^invalid configuration: --max-concurrent: /);
  expect(() => loadConfig({ env: { AGENTKIT_MAX_CONCURRENT_TASKS: "0" } })).toThrow(/^invalid configuration: AGENTKIT_MAX_CONCURRENT_TASKS: /);
  expect(() => loadConfig({ env: { AGENTKIT_API_KEY: "short" } })).toThrow("AGENTKIT_API_KEY: must be 8 to 512 characters");
  expect(() => loadConfig({ env: { AGENTKIT_LOG_LEVEL: "loud" } })).toThrow("AGENTKIT_LOG_LEVEL");
  // A password with characters a URL reserves (openssl rand -base64) is said to be that, not "not a postgres:// URL".
  expect(() => loadConfig({ env: { AGENTKIT_DATABASE_URL: "postgres://u:ab/cd+ef=@db:5432/agentkit" } })).toThrow(
    "AGENTKIT_DATABASE_URL: is not a valid URL: percent-encode the characters of the user name and password",
  );
  expect(() => loadConfig({ env: { AGENTKIT_DATABASE_URL: "mysql://u:p@db/x" } })).toThrow("AGENTKIT_DATABASE_URL: must be a postgres:// or postgresql:// URL");
  // An '@' after the host is a password's: the URL parses, with part of the password as the host.
  expect(() => loadConfig({ env: { AGENTKIT_DATABASE_URL: "postgres://u:p@ss/word@db:5432/agentkit" } })).toThrow("AGENTKIT_DATABASE_URL: has an '@' after its host: percent-encode");
  expect(() => loadConfig({ env: { AGENTKIT_DATABASE_URL: "postgres://u:Pa@ss?Secret@db/agentkit" } })).toThrow("has an '@' after its host");
  expect(loadConfig({ env: { AGENTKIT_DATABASE_URL: "postgres://u:p%40ss@db/agentkit?sslmode=require" } }).databaseUrl).toContain("%40");
  // Tenant names agentkit uses itself: the admin key's tasks are owned by "admin", open mode's by
  // "anonymous", timeouts decide as "system" — a tenant so named would own or sign as those.
  for (const name of ["admin", "anonymous", "system"]) {
    expect(() => loadConfig({ env: { AGENTKIT_API_KEYS: `alice:alice-key-0001,${name}:other-key-0002` } })).toThrow(`AGENTKIT_API_KEYS: '${name}' is reserved (admin, anonymous, system)`);
  }
  expect(loadConfig({ env: { AGENTKIT_API_KEYS: "administrator:other-key-0002" } }).apiKeys).toEqual([{ name: "administrator", key: "other-key-0002" }]);
  // The admin key given to a tenant too would authenticate as that tenant: no admin key at all.
  expect(() => loadConfig({ env: { AGENTKIT_API_KEY: "same-key-0001", AGENTKIT_API_KEYS: "alice:alice-key-0001,bob:same-key-0001" } })).toThrow(
    "invalid configuration: AGENTKIT_API_KEYS: the key of 'bob' is AGENTKIT_API_KEY, the admin key: a key is the admin's or one tenant's",
  );
  expect(loadConfig({ env: { AGENTKIT_API_KEY: "admin-key-0001", AGENTKIT_API_KEYS: "alice:alice-key-0001" } }).apiKeys).toEqual([{ name: "alice", key: "alice-key-0001" }]);
  expect(loadConfig({ env: { AGENTKIT_DATABASE_URL: "postgres://u:ab%2Fcd%2Bef%3D@db:5432/agentkit" } }).databaseUrl).toContain("%2F");
  // CORS origins are origins: a typo stops start-up instead of matching no browser.
  expect(() => loadConfig({ env: { AGENTKIT_CORS_ORIGINS: "not a url,*" } })).toThrow("AGENTKIT_CORS_ORIGINS: 'not a url' is not an origin");
  expect(() => loadConfig({ env: { AGENTKIT_CORS_ORIGINS: "https://app.example.com/path" } })).toThrow("is not an origin");
  expect(loadConfig({ env: { AGENTKIT_CORS_ORIGINS: "https://App.Example.com/, http://localhost:5173" } }).corsOrigins).toEqual(["https://app.example.com", "http://localhost:5173"]);
  // As browsers send them: no default port, punycode; an app's own scheme as written.
  expect(
    loadConfig({ env: { AGENTKIT_CORS_ORIGINS: "https://example.com:443,https://bücher.example,chrome-extension://abcdefghijklmnop,capacitor://localhost" } }).corsOrigins,
  ).toEqual(["https://example.com", "https://xn--bcher-kva.example", "chrome-extension://abcdefghijklmnop", "capacitor://localhost"]);
  expect(() => loadConfig({ env: { AGENTKIT_CORS_ORIGINS: "https://app.example.com?x=1" } })).toThrow("is not an origin");
  expect(() => loadConfig({ env: { AGENTKIT_CORS_ORIGINS: "https://user@app.example.com" } })).toThrow("is not an origin");
  expect(loadConfig({ env: { AGENTKIT_CORS_ORIGINS: "capacitor://localhost/" } }).corsOrigins).toEqual(["capacitor://localhost"]);
});

test("command line", () => {
  expect(parseCommand([])).toMatchObject({ kind: "serve" });
  expect(parseCommand(["serve", "--port", "1", "--data-dir", "/x"])).toMatchObject({ kind: "serve", flags: { port: "1", dataDir: "/x" } });
  expect(parseCommand(["--help"])).toEqual({ kind: "help" });
  expect(parseCommand(["--version"])).toEqual({ kind: "version" });
  expect(parseCommand(["healthcheck", "--url", "http://x/health"])).toEqual({ kind: "healthcheck", url: "http://x/health", flags: {} });
  // healthcheck takes serve's flags, to find the server the way serve was told to.
  expect(parseCommand(["healthcheck", "--port", "9000", "--host", "0.0.0.0", "--data-dir", "/d", "--config", "/c.json"])).toEqual({
    kind: "healthcheck",
    url: undefined,
    flags: { port: "9000", host: "0.0.0.0", dataDir: "/d", configPath: "/c.json" },
  });
  expect(() => parseCommand(["serve", "--url", "http://x/health"])).toThrow("--url is an option of healthcheck");
  expect(() => parseCommand(["launch"])).toThrow("unknown command 'launch'");
  expect(() => parseCommand(["--bogus"])).toThrow();
});
