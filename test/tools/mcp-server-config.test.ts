/** The MCP server config schema and the `<server>__<tool>` naming rule. */
import { describe, expect, test } from "bun:test";
import { McpServerConfig, McpServersConfig, mcpToolName } from "../../src/tools/mcp/index.ts";

describe("McpServerConfig", () => {
  test("a config with `command` is a stdio server, with defaults filled in", () => {
    expect(McpServerConfig.parse({ name: "files", command: "files-server" })).toEqual({
      name: "files",
      transport: "stdio",
      command: "files-server",
      args: [],
      timeoutMs: 30_000,
    });
  });

  test("a config with `url` is a Streamable HTTP server", () => {
    const config = McpServerConfig.parse({ name: "search", url: "https://mcp.example.com/mcp", headers: { authorization: "Bearer x" }, tools: ["find"] });
    expect(config).toMatchObject({ transport: "http", url: "https://mcp.example.com/mcp", tools: ["find"] });
  });

  test("rejects configs that are neither, both, or malformed", () => {
    for (const input of [
      { name: "x" },
      { name: "x", command: "a", url: "http://127.0.0.1/mcp" },
      { name: "x", url: "ftp://example.com/mcp" },
      { name: "x", command: "" },
      { name: "x", command: "a", tools: [] },
      { name: "x", command: "a", timeoutMs: 0 },
      { name: "x", command: "a", transport: "http" },
      { name: "x", command: "a", unknownField: 1 },
    ]) {
      expect(McpServerConfig.safeParse(input).success).toBe(false);
    }
  });

  test("server names cannot contain `__` or anything a tool name cannot", () => {
    for (const name of ["files", "my-files", "my_files", "a1"]) expect(McpServerConfig.safeParse({ name, command: "a" }).success).toBe(true);
    for (const name of ["", "a__b", "_a", "a_", "a.b", "a b", "x".repeat(33)]) {
      expect(McpServerConfig.safeParse({ name, command: "a" }).success).toBe(false);
    }
  });

  test("server names must be unique", () => {
    const result = McpServersConfig.safeParse([
      { name: "a", command: "x" },
      { name: "a", url: "http://127.0.0.1:1/mcp" },
    ]);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]).toMatchObject({ path: [1, "name"], message: "Duplicate MCP server name 'a'" });
  });
});

describe("mcpToolName", () => {
  test("prefixes the server name and replaces characters model APIs reject", () => {
    expect(mcpToolName("files", "read_file")).toBe("files__read_file");
    expect(mcpToolName("files", "fs.read/file v2")).toBe("files__fs_read_file_v2");
  });

  test("stays within 64 characters", () => {
    const name = mcpToolName("server", "t".repeat(100));
    expect(name).toHaveLength(64);
    expect(name).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
  });
});
