/**
 * What a tools module may import without a `node_modules`: `agentkit/tools` (defineTool, z) always,
 * and `zod` / `zod/v4` when nothing else provides them. A compiled binary resolves no bare
 * specifier for a file it imports at run time (its own packages are bundled, not on disk), so these
 * are registered as Bun virtual modules (`Bun.plugin` + `build.module`), which the compiled binary
 * honours too.
 *
 * `zod` is registered only when it does not resolve from the tools module's directory: a virtual
 * module is seen by every later import in the process, and a package with its own nested zod (or a
 * user who installed one next to the module) must keep it.
 */
import { plugin } from "bun";
import * as zod from "zod";
import * as agentkitTools from "../define.ts";

let toolsRegistered = false;
let zodRegistered = false;

/** Makes `agentkit/tools` (and `zod`, if `directory` cannot resolve it) importable. Idempotent. */
export function provideModules(directory: string): void {
  const provideZod = !zodRegistered && !resolves("zod", directory);
  if (toolsRegistered && !provideZod) return;
  plugin({
    name: "agentkit tools module",
    setup(build) {
      if (!toolsRegistered) build.module("agentkit/tools", () => ({ exports: { ...agentkitTools }, loader: "object" }));
      if (provideZod) {
        for (const specifier of ["zod", "zod/v4"]) build.module(specifier, () => ({ exports: { ...zod }, loader: "object" }));
      }
    },
  });
  toolsRegistered = true;
  if (provideZod) zodRegistered = true;
}

function resolves(specifier: string, directory: string): boolean {
  try {
    Bun.resolveSync(specifier, directory);
    return true;
  } catch {
    return false;
  }
}
