/**
 * The compiled `agentkit` binary for tests: build it once (`bun build --compile`, into a temp dir,
 * so `dist/` is left alone), then start it as separate processes — e.g. the nodes of a cluster.
 *
 * A started node's stderr (its log) is drained all the time — a pipe nobody reads would block the
 * node once it holds 64 KiB — and kept, so a test can read what the node logged.
 */
import { join } from "node:path";
import { within } from "./deferred.ts";

const root = join(import.meta.dir, "..", "..");

/**
 * The flags the shipped binary is built with (package.json's `build`, the Dockerfile): tests run
 * what users run — bytecode, ES modules, lazily loaded chunks. test/docker.test.ts checks both
 * places use them.
 */
export const BUILD_FLAGS = ["--compile", "--minify", "--sourcemap", "--bytecode", "--format=esm", "--splitting"] as const;

/** Builds the binary as `<dir>/agentkit`; returns its path. Throws with the compiler's output. */
export function buildBinary(dir: string): string {
  const binary = join(dir, "agentkit");
  const build = Bun.spawnSync(["bun", "build", ...BUILD_FLAGS, "src/main.ts", "--outfile", binary], { cwd: root, stderr: "pipe", stdout: "pipe" });
  if (build.exitCode !== 0) throw new Error(`build failed: ${build.stderr.toString()}`);
  return binary;
}

export interface BinaryProcess {
  readonly child: Bun.Subprocess<"ignore", "ignore", "pipe">;
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly base: string;
  /** `ws://127.0.0.1:<port>` */
  readonly ws: string;
  /** Everything the process wrote to stderr so far. */
  log(): string;
  /** The log lines that contain `text`. */
  lines(text: string): string[];
  /** Exit code once it exited. */
  readonly exited: Promise<number>;
}

/**
 * Starts `binary` with `args` (then `--port 0`) and exactly `env`; resolves once it logged its
 * listening line. Throws with its log if it exits first or does not listen within `ms`.
 */
export async function launchBinary(binary: string, args: string[], env: Record<string, string>, options: { cwd?: string; ms?: number } = {}): Promise<BinaryProcess> {
  const child = Bun.spawn([binary, ...args, "--port", "0"], { env, cwd: options.cwd, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const { port, log } = await listeningPort(child, options.ms);
  return {
    child,
    port,
    base: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    log,
    lines: (text) => log().split("\n").filter((line) => line.includes(text)),
    exited: child.exited,
  };
}

/**
 * Reads a started server's stderr until it logs its listening line (on 127.0.0.1 or 0.0.0.0), and
 * goes on draining it (a pipe nobody reads blocks the process once it holds 64 KiB). Resolves
 * with the port and the log so far; throws with the log if the process exits first or does not
 * listen within `ms` (and kills it then).
 */
export async function listeningPort(
  child: { stderr: ReadableStream<Uint8Array>; exited: Promise<number>; kill(signal?: number | NodeJS.Signals): void },
  ms = 15_000,
): Promise<{ port: number; log: () => string }> {
  let log = "";
  const { promise: listening, resolve, reject } = Promise.withResolvers<number>();
  void (async () => {
    const decoder = new TextDecoder();
    const reader = child.stderr.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      log += decoder.decode(value, { stream: true });
      const match = /listening on http:\/\/(?:127\.0\.0\.1|0\.0\.0\.0):(\d+)/.exec(log);
      if (match) resolve(Number(match[1]));
    }
    reject(new Error(`exited early (code ${await child.exited}): ${log}`));
  })().catch(reject);
  try {
    return { port: await within(listening, ms, "the listening line"), log: () => log };
  } catch (error) {
    child.kill("SIGKILL");
    throw new Error(`${(error as Error).message}\n${log}`);
  }
}

