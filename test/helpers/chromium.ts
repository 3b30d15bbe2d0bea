/**
 * Headless Chromium for tests that must see what a real browser does (subprotocol rules, Origin,
 * ping/pong), driven over the DevTools protocol with Bun's own WebSocket — no npm dependency.
 *
 * `findChromium()` returns undefined when no Chromium is installed: tests then skip themselves and
 * say why (`.ci/run` installs Debian's `chromium`).
 */
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const CANDIDATES = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];

export function findChromium(): string | undefined {
  return CANDIDATES.find((path): path is string => !!path && existsSync(path));
}

export interface Page {
  /** Evaluates an expression in the page (awaiting a returned promise) and returns its JSON value. */
  evaluate<T = unknown>(expression: string): Promise<T>;
}

export interface Browser {
  open(url: string): Promise<Page>;
  close(): Promise<void>;
}

export async function launchChromium(executable: string): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "agentkit-chromium-"));
  const child = Bun.spawn(
    [
      executable,
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-extensions",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "about:blank",
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  const endpoint = await devtoolsEndpoint(child.stderr, 20_000);
  const socket = new WebSocket(endpoint);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener("open", () => resolve(), { once: true });
    socket.addEventListener("error", () => reject(new Error(`cannot reach Chromium's DevTools at ${endpoint}`)), { once: true });
  });
  let nextId = 1;
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string } };
    if (message.id === undefined) return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error) waiter?.reject(new Error(message.error.message));
    else waiter?.resolve(message.result);
  });
  const send = <T>(method: string, params: object = {}, sessionId?: string) =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });

  return {
    async open(url) {
      const { targetId } = await send<{ targetId: string }>("Target.createTarget", { url: "about:blank" });
      const { sessionId } = await send<{ sessionId: string }>("Target.attachToTarget", { targetId, flatten: true });
      await send("Page.enable", {}, sessionId);
      await send("Page.navigate", { url }, sessionId);
      const page: Page = {
        async evaluate<T>(expression: string) {
          const reply = await send<{ result: { value?: unknown }; exceptionDetails?: { text: string; exception?: { description?: string } } }>(
            "Runtime.evaluate",
            { expression, awaitPromise: true, returnByValue: true },
            sessionId,
          );
          if (reply.exceptionDetails) {
            throw new Error(reply.exceptionDetails.exception?.description ?? reply.exceptionDetails.text);
          }
          return reply.result.value as T;
        },
      };
      // Wait until the document at `url` is the one evaluated in.
      for (let tries = 0; tries < 200; tries++) {
        const ready = await page.evaluate<boolean>(`location.href.startsWith(${JSON.stringify(url)}) && document.readyState === "complete"`);
        if (ready) return page;
        await Bun.sleep(25);
      }
      throw new Error(`Chromium did not load ${url}`);
    },
    async close() {
      try {
        await Promise.race([send("Browser.close"), Bun.sleep(2000)]);
      } catch {
        // The browser may already be gone.
      }
      socket.close();
      child.kill();
      await child.exited;
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

async function devtoolsEndpoint(stderr: ReadableStream<Uint8Array>, timeoutMs: number): Promise<string> {
  const reader = stderr.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    const match = /DevTools listening on (ws:\/\/\S+)/.exec(text);
    if (match) {
      // Keep draining stderr so Chromium never blocks on a full pipe.
      void (async () => {
        while (!(await reader.read()).done) {}
      })().catch(() => {});
      return match[1]!;
    }
  }
  throw new Error(`Chromium did not start its DevTools endpoint: ${text.slice(-500)}`);
}
