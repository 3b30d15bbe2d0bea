/**
 * Preloaded before every test file (bunfig.toml): tests start real servers on loopback, so give
 * slow, shared machines more than the default 5 s per test. Each test still bounds its own waits.
 */
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(20_000);
