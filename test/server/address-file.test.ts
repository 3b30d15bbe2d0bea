/**
 * The address file's helpers are the server's (src/server/address-file.ts: serve writes the file and
 * checks it at start-up); `agentkit healthcheck` imports them from there. The server imports nothing
 * from the CLI, which is a client of it. (What the helpers do: test/cli/healthcheck.test.ts.)
 */
import { expect, test } from "bun:test";
import { dirname, join, relative, resolve } from "node:path";

const src = join(import.meta.dir, "..", "..", "src");

test("src/server imports nothing from src/cli", async () => {
  const found: string[] = [];
  for (const file of new Bun.Glob("**/*.ts").scanSync(join(src, "server"))) {
    const path = join(src, "server", file);
    const text = await Bun.file(path).text();
    for (const match of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']/g)) {
      const target = relative(src, resolve(dirname(path), match[1]!));
      if (target.startsWith(`cli/`)) found.push(`${relative(src, path)} imports ${match[1]}`);
    }
  }
  expect(found).toEqual([]);
});
