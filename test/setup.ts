/**
 * Preloaded (bunfig.toml): tests start real servers on loopback, so give slow, shared machines
 * more than the default 5 s per test. Each test still bounds its own waits.
 *
 * Bun 1.4.4 applies this only to the first test file of a run; `bun run test` (what the README and
 * CI run) passes `--timeout 20000`, which holds for every file.
 */
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(20_000);
