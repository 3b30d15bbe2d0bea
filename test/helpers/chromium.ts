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
  /** Polls `expression` until it is truthy and returns its value; throws with `what` after `ms`. */
  waitFor<T = unknown>(expression: string, what: string, ms?: number): Promise<T>;
  /** Clicks the element `selector` matches (throws if none does, or it is disabled). */
  click(selector: string): Promise<void>;
  /** Sets the value of the input, textarea or select `selector` matches, as typing would (input and change events). */
  type(selector: string, text: string): Promise<void>;
  /** Reloads the page and waits until the new document is complete. */
  reload(): Promise<void>;
  /** Uncaught exceptions and `console.error`/`console.assert` messages of the page so far. */
  errors(): string[];
  /** A PNG of the viewport. */
  screenshot(): Promise<Uint8Array>;
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
  // Events (messages without an id) go to the listeners of their session.
  const listeners = new Map<string, (method: string, params: Record<string, unknown>) => void>();
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: Record<string, unknown>; sessionId?: string };
    if (message.id === undefined) {
      if (message.method && message.sessionId) listeners.get(message.sessionId)?.(message.method, message.params ?? {});
      return;
    }
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
      const errors: string[] = [];
      listeners.set(sessionId, (method, params) => {
        if (method === "Runtime.exceptionThrown") {
          const details = params.exceptionDetails as { text: string; exception?: { description?: string } };
          errors.push(`uncaught: ${details.exception?.description ?? details.text}`);
        } else if (method === "Runtime.consoleAPICalled" && (params.type === "error" || params.type === "assert")) {
          const args = (params.args as { value?: unknown; description?: string }[]) ?? [];
          errors.push(`console.${String(params.type)}: ${args.map((arg) => (arg.value !== undefined ? String(arg.value) : (arg.description ?? ""))).join(" ")}`);
        }
      });
      await send("Page.enable", {}, sessionId);
      await send("Runtime.enable", {}, sessionId);
      await send("Page.navigate", { url }, sessionId);
      const evaluate = async <T>(expression: string) => {
        const reply = await send<{ result: { value?: unknown }; exceptionDetails?: { text: string; exception?: { description?: string } } }>(
          "Runtime.evaluate",
          { expression, awaitPromise: true, returnByValue: true },
          sessionId,
        );
        if (reply.exceptionDetails) {
          throw new Error(reply.exceptionDetails.exception?.description ?? reply.exceptionDetails.text);
        }
        return reply.result.value as T;
      };
      const loaded = async (what: string) => {
        for (let tries = 0; tries < 400; tries++) {
          const ready = await evaluate<boolean>(`location.href.startsWith(${JSON.stringify(what)}) && document.readyState === "complete"`).catch(() => false);
          if (ready) return;
          await Bun.sleep(25);
        }
        throw new Error(`Chromium did not load ${what}`);
      };
      const page: Page = {
        evaluate,
        async waitFor<T>(expression: string, what: string, ms = 10_000) {
          const deadline = Date.now() + ms;
          let last: unknown;
          for (;;) {
            last = await evaluate<T>(expression);
            if (last) return last as T;
            if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last value: ${JSON.stringify(last)})`);
            await Bun.sleep(25);
          }
        },
        async click(selector) {
          await evaluate(`(() => {
            const element = document.querySelector(${JSON.stringify(selector)});
            if (!element) throw new Error("no element matches " + ${JSON.stringify(selector)});
            if (element.disabled) throw new Error(${JSON.stringify(selector)} + " is disabled");
            element.click();
          })()`);
        },
        async type(selector, text) {
          await evaluate(`(() => {
            const element = document.querySelector(${JSON.stringify(selector)});
            if (!element) throw new Error("no element matches " + ${JSON.stringify(selector)});
            element.focus();
            element.value = ${JSON.stringify(text)};
            element.dispatchEvent(new Event("input", { bubbles: true }));
            element.dispatchEvent(new Event("change", { bubbles: true }));
          })()`);
        },
        async reload() {
          const href = await evaluate<string>("location.href");
          await evaluate("document.documentElement.dataset.reloading = '1'");
          await send("Page.reload", {}, sessionId);
          // The old document may still answer for a moment: wait for one without the mark.
          for (let tries = 0; tries < 400; tries++) {
            const fresh = await evaluate<boolean>("document.documentElement.dataset.reloading !== '1'").catch(() => false);
            if (fresh) break;
            await Bun.sleep(25);
          }
          await loaded(href);
        },
        errors: () => [...errors],
        async screenshot() {
          const { data } = await send<{ data: string }>("Page.captureScreenshot", { format: "png" }, sessionId);
          return Uint8Array.from(Buffer.from(data, "base64"));
        },
      };
      // Wait until the document at `url` is the one evaluated in.
      await loaded(url);
      return page;
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
