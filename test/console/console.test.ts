/**
 * The web console (`/`), in a real headless Chromium against a real server with a key: the key
 * prompt, starting a task from the form and watching its timeline fill in live, cancel, a reload
 * mid-task (every event once), an approval, a task of 3,000 events, and no error in the page's
 * console. And the compiled binary serves the bundled page. Skipped, with the reason, when
 * Chromium is not installed (CI installs it).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { buildBinary, launchBinary } from "../helpers/binary.ts";
import { findChromium, launchChromium, type Browser, type Page } from "../helpers/chromium.ts";
import { startTestServer, tempDir, type TestServer } from "../helpers/server.ts";

const chromium = findChromium();
if (!chromium) console.warn("test/console: Chromium is not installed (set CHROMIUM_PATH or install chromium): the browser tests are skipped");

const KEY = "console-test-key-0123456789";
const auth = { authorization: `Bearer ${KEY}` };

/** Counts and facts of the timeline, read in the page. */
const TIMELINE = `(() => {
  const entries = [...document.querySelectorAll("#timeline > li.entry[data-seq]")];
  return {
    count: entries.length,
    seqs: entries.map((entry) => Number(entry.dataset.seq)),
    kinds: entries.map((entry) => entry.dataset.kind),
    typing: document.querySelectorAll("#timeline > li.typing").length,
    result: document.querySelector("#timeline > li.entry.result")?.textContent ?? null,
    status: document.getElementById("task-status").textContent,
  };
})()`;

interface TimelineState {
  count: number;
  seqs: number[];
  kinds: string[];
  typing: number;
  result: string | null;
  status: string;
}

describe.skipIf(!chromium)("the web console in Chromium", () => {
  let browser: Browser;
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({
      agents: [
        {},
        { name: "slow", model: "demo/slow" },
        { name: "careful", approval: ["calculator"] },
        { name: "bench", model: "demo/bench", max_steps: 2000 },
      ],
      config: { apiKey: KEY },
    });
    browser = await launchChromium(chromium!);
  }, 30_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  const rest = async <T>(path: string, init: RequestInit & { json?: unknown } = {}): Promise<T> => {
    const response = await server.http(path, { ...init, headers: { ...auth, ...(init.headers as Record<string, string>) } });
    expect(response.ok).toBe(true);
    return (await response.json()) as T;
  };

  /** Every stored frame of a task, through REST (pages of 1,000). */
  const storedEvents = async (id: string) => {
    const events: { seq: number; type: string }[] = [];
    for (;;) {
      const page = await rest<{ events: { seq: number; type: string }[]; last_seq: number }>(`/tasks/${id}/events?after=${events.at(-1)?.seq ?? 0}&limit=1000`);
      events.push(...page.events);
      if (page.events.length === 0 || events.at(-1)!.seq >= page.last_seq) return events;
    }
  };

  /** Opens the console in a new tab and answers its key prompt (a new tab has nothing in its session storage). */
  const openConsole = async (hash = ""): Promise<Page> => {
    const page = await browser.open(`${server.baseUrl}/${hash}`);
    await page.waitFor(`document.getElementById("key-dialog").open`, "the key prompt");
    expect(await page.evaluate(`document.getElementById("key-message").textContent`)).toContain("needs an API key");
    // A key the server refuses is asked for again.
    await page.type("#key-input", "wrong-key-0123456789");
    await page.click("#key-submit");
    await page.waitFor(`document.getElementById("key-dialog").open && document.getElementById("key-message").textContent.includes("refused")`, "the refused-key prompt");
    await page.type("#key-input", KEY);
    await page.click("#key-submit");
    await page.waitFor(`!document.getElementById("key-dialog").open && document.querySelectorAll("#task-agent option").length === 4`, "the agents in the form");
    return page;
  };

  const timeline = (page: Page) => page.evaluate<TimelineState>(TIMELINE);

  /** Every durable event of the task is in the page once, in order. */
  const expectEveryEventOnce = async (page: Page, id: string) => {
    const stored = await storedEvents(id);
    const shown = await timeline(page);
    expect(shown.seqs).toEqual(stored.map((event) => event.seq));
    expect(shown.count).toBe(stored.length);
    expect(shown.typing).toBe(0);
  };

  test("asks for the key, starts a task on the default agent from the form, and the timeline fills in", async () => {
    const page = await openConsole();
    expect(await page.evaluate(`document.getElementById("task-agent").value`)).toBe("default");
    await page.type("#task-input", "What is 12*(3+4)?");
    await page.click("#start-task");
    const hash = await page.waitFor<string>(`location.hash.startsWith("#/tasks/") && location.hash`, "the new task's view");
    const id = decodeURIComponent(hash.slice("#/tasks/".length));
    const done = await page.waitFor<TimelineState>(`(() => { const t = ${TIMELINE}; return t.result && t; })()`, "the result");
    expect(done.kinds).toEqual(["usage", "thought", "tool_call", "tool_result", "usage", "result"]);
    const call = await page.evaluate<string>(`document.querySelector("#timeline li[data-kind=tool_call]").textContent`);
    expect(call).toContain("calculator");
    expect(call).toContain("12*(3+4)");
    expect(await page.evaluate<string>(`document.querySelector("#timeline li[data-kind=tool_result]").textContent`)).toContain("84");
    expect(done.result).toContain("= 84");
    expect(done.result).toContain("completed");
    await page.waitFor(`document.getElementById("task-status").textContent === "completed"`, "the completed status");
    // The list shows it, completed, as the open one.
    await page.waitFor(`document.querySelector('#task-list a[aria-current="page"] .status')?.textContent === "completed"`, "the task in the list");
    expect(await page.evaluate(`document.getElementById("task-totals").textContent`)).toContain("6 events");

    const task = await rest<{ status: string; output: string; input: string }>(`/tasks/${id}`);
    expect(task).toMatchObject({ status: "completed", input: "What is 12*(3+4)?" });
    expect(task.output).toContain("84");
    await expectEveryEventOnce(page, id);
    // The key is kept in this tab only and never travels in a URL.
    expect(await page.evaluate(`sessionStorage.getItem("agentkit.apiKey")`)).toBe(KEY);
    const urls = await page.evaluate<string[]>(`performance.getEntriesByType("resource").map((entry) => entry.name).concat(location.href)`);
    expect(urls.length).toBeGreaterThan(3);
    expect(urls.filter((url) => url.includes(KEY))).toEqual([]);
    expect(page.errors()).toEqual([]);
  });

  test("a task started elsewhere appears in the list and its status changes there without a reload", async () => {
    const page = await openConsole();
    const { id } = await server.createTask({ input: "Tell me something long enough to watch.", agent: "slow" }, auth);
    const row = `document.querySelector('#task-list li[data-task="${id}"] .status')?.textContent`;
    await page.waitFor(`${row} === "running" || ${row} === "queued"`, "the new task in the list");
    await rest(`/tasks/${id}/cancel`, { method: "POST" });
    await page.waitFor(`${row} === "cancelled"`, "the cancelled status in the list", 10_000);
    expect(page.errors()).toEqual([]);
  });

  test("older tasks, below the first page (Load more), that have not ended: their rows are read again, the oldest too, until they do", async () => {
    // 25 tasks that wait for an approval (they stay waiting) — more than a poll reads again (20) —
    // then a first page's worth of newer ones. The oldest waiting one is the one watched.
    const waiting: string[] = [];
    for (let index = 0; index < 25; index++) waiting.push((await server.createTask({ input: `What is 6*${index}?`, agent: "careful" }, auth)).id);
    for (const task of waiting) {
      const deadline = performance.now() + 15_000;
      while ((await rest<{ status: string }>(`/tasks/${task}`)).status !== "waiting") {
        if (performance.now() > deadline) throw new Error(`task ${task} did not wait`);
        await Bun.sleep(20);
      }
    }
    const id = waiting[0]!;
    const newer = await Promise.all(Array.from({ length: 50 }, (_, index) => server.createTask({ input: `What is ${index}+1?` }, auth)));
    for (const task of newer) {
      const deadline = performance.now() + 15_000;
      while ((await rest<{ status: string }>(`/tasks/${task.id}`)).status !== "completed") {
        if (performance.now() > deadline) throw new Error(`task ${task.id} did not complete`);
        await Bun.sleep(20);
      }
    }
    const page = await openConsole();
    const row = `document.querySelector('#task-list li[data-task="${id}"] .status')?.textContent`;
    await page.waitFor(`document.querySelectorAll("#task-list li").length >= 50`, "the first page");
    expect(await page.evaluate(`${row} ?? null`)).toBeNull(); // not on the first page
    await page.click("#load-more");
    await page.waitFor(`${row} === "waiting"`, "the older task, from Load more");
    await rest(`/tasks/${id}/cancel`, { method: "POST" });
    // Read again within two polls of 20 (3 s each); before, only the newest 20 ever were.
    await page.waitFor(`${row} === "cancelled"`, "its cancelled status, without a reload", 12_000);
    for (const other of waiting.slice(1)) await rest(`/tasks/${other}/cancel`, { method: "POST" });
    expect(page.errors()).toEqual([]);
  });

  test("cancel from the page: a demo/slow task ends cancelled, after text typed live and a steering message", async () => {
    const page = await openConsole();
    await page.type("#task-agent", "slow");
    await page.type("#task-input", "Please tell me a long story about a lighthouse keeper and the sea, with many details.");
    await page.click("#start-task");
    const hash = await page.waitFor<string>(`location.hash.startsWith("#/tasks/") && location.hash`, "the new task's view");
    const id = decodeURIComponent(hash.slice("#/tasks/".length));
    // The text types in live, from delta frames, before anything of the step is stored.
    const typed = await page.waitFor<string>(
      `(() => { const typing = document.querySelector("#timeline > li.typing .text"); return typing && typing.textContent.split(" ").length > 3 && typing.textContent; })()`,
      "text typing live",
    );
    expect(typed).toStartWith("You said:");
    expect((await rest<{ status: string }>(`/tasks/${id}`)).status).toBe("running");
    await page.waitFor(`!document.getElementById("steer-form").hidden`, "the steering box");
    await page.type("#steer-input", "Keep it short, please.");
    await page.evaluate(`document.getElementById("steer-form").requestSubmit()`);
    await page.waitFor(`document.getElementById("steer-status").textContent.startsWith("Sent")`, "the message accepted");

    await page.click("#cancel-task");
    const done = await page.waitFor<TimelineState>(`(() => { const t = ${TIMELINE}; return t.result && t; })()`, "the cancelled result");
    expect(done.result).toContain("cancelled");
    await page.waitFor(`document.getElementById("task-status").textContent === "cancelled" && document.getElementById("cancel-task").hidden && document.getElementById("steer-form").hidden`, "the cancelled status");
    expect((await rest<{ status: string }>(`/tasks/${id}`)).status).toBe("cancelled");
    await expectEveryEventOnce(page, id);
    expect(page.errors()).toEqual([]);
  });

  test("a reload mid-task (demo/slow) resumes the timeline: it completes with every event once", async () => {
    // Words 150 ms apart: the thought and the answer type for several seconds each.
    const sum = Array.from({ length: 12 }, (_, index) => index + 1).join(" + ");
    const { id } = await server.createTask({ input: `What is ${sum}?`, agent: "slow" }, auth);
    const page = await openConsole(`#/tasks/${id}`); // a deep link
    await page.waitFor(`document.querySelector("#timeline > li.typing")`, "the first step typing");
    const before = await timeline(page);
    expect((await rest<{ status: string }>(`/tasks/${id}`)).status).toBe("running");

    await page.reload();
    // The key is still in this tab: no prompt; the deep link opens the same task.
    expect(await page.evaluate(`document.getElementById("key-dialog").open`)).toBe(false);
    await page.waitFor(`document.getElementById("task-title").textContent === ${JSON.stringify(id)}`, "the task after the reload");
    expect((await rest<{ status: string }>(`/tasks/${id}`)).status).toBe("running");
    const done = await page.waitFor<TimelineState>(`(() => { const t = ${TIMELINE}; return t.result && t; })()`, "the result after the reload", 20_000);
    expect(done.count).toBeGreaterThan(before.count);
    expect(done.kinds).toEqual(["usage", "thought", "tool_call", "tool_result", "usage", "result"]);
    expect(done.result).toContain("= 78");
    await expectEveryEventOnce(page, id);
    expect(page.errors()).toEqual([]);
  });

  test("an approval from the page: the task waits, Approve runs the call, and it completes", async () => {
    const page = await openConsole();
    await page.type("#task-agent", "careful");
    expect(await page.evaluate(`document.getElementById("agent-info").textContent`)).toContain("asks approval for calculator");
    await page.type("#task-input", "What is 6*7?");
    await page.click("#start-task");
    const hash = await page.waitFor<string>(`location.hash.startsWith("#/tasks/") && location.hash`, "the new task's view");
    const id = decodeURIComponent(hash.slice("#/tasks/".length));
    await page.waitFor(`document.querySelector("#timeline li[data-kind=approval] button.approve")`, "the Approve button");
    await page.waitFor(`document.getElementById("task-status").textContent === "waiting"`, "the waiting status");
    expect((await rest<{ status: string }>(`/tasks/${id}`)).status).toBe("waiting");
    await page.click("#timeline li[data-kind=approval] button.approve");
    const done = await page.waitFor<TimelineState>(`(() => { const t = ${TIMELINE}; return t.result && t; })()`, "the result");
    expect(done.result).toContain("= 42");
    expect(done.kinds).toContain("decided");
    // The decision closed the controls.
    expect(await page.evaluate(`document.querySelectorAll("#timeline button.approve").length`)).toBe(0);
    const events = await rest<{ events: { type: string; data: { event_type?: string; data?: { decision?: string; by?: string } } }[] }>(`/tasks/${id}/events`);
    const decided = events.events.find((event) => event.data.event_type === "approval_decided");
    expect(decided?.data.data).toMatchObject({ decision: "approved", by: "admin" });
    await expectEveryEventOnce(page, id);

    // A rejection with a reason reaches the model as a tool error.
    await page.type("#task-input", "What is 5*5?");
    await page.click("#start-task");
    await page.waitFor(`location.hash !== ${JSON.stringify(hash)} && document.querySelector("#timeline li[data-kind=approval] button.reject")`, "the Reject button");
    const second = decodeURIComponent((await page.evaluate<string>("location.hash")).slice("#/tasks/".length));
    await page.type("#timeline li[data-kind=approval] input[name=reason]", "not today");
    await page.click("#timeline li[data-kind=approval] button.reject");
    const rejected = await page.waitFor<TimelineState>(`(() => { const t = ${TIMELINE}; return t.result && t; })()`, "the result after a rejection");
    expect(rejected.kinds).toContain("tool_error");
    expect(await page.evaluate<string>(`document.querySelector("#timeline li[data-kind=decided]").textContent`)).toContain("not today");
    await expectEveryEventOnce(page, second);
    expect(page.errors()).toEqual([]);
  });

  test("threads from the page: a new thread, a task in it, and the next task continues it", async () => {
    const page = await openConsole();
    await page.click("#new-thread");
    const thread = await page.waitFor<string>(`document.getElementById("task-thread").value`, "the new thread's id");
    await page.type("#task-input", "What is 2+3?");
    await page.click("#start-task");
    const firstHash = await page.waitFor<string>(`location.hash.startsWith("#/tasks/") && document.querySelector("#timeline li.entry.result") && location.hash`, "the first task's result");
    await page.waitFor(`!document.getElementById("continue-thread").hidden`, "Continue this thread");
    await page.type("#task-thread", "");
    await page.click("#continue-thread");
    expect(await page.evaluate(`document.getElementById("task-thread").value`)).toBe(thread);
    await page.type("#task-input", "What is 4+4?");
    await page.click("#start-task");
    const secondHash = await page.waitFor<string>(`location.hash !== ${JSON.stringify(firstHash)} && document.querySelector("#timeline li.entry.result") && location.hash`, "the second task's result");
    const detail = await rest<{ tasks: { id: string; input: string }[] }>(`/threads/${thread}`);
    expect(detail.tasks.map((task) => task.input)).toEqual(["What is 2+3?", "What is 4+4?"]);
    expect(detail.tasks.map((task) => `#/tasks/${task.id}`)).toEqual([firstHash, secondHash]);
    expect(page.errors()).toEqual([]);
  });

  test("a task of 3,000 events renders whole, one entry per event", async () => {
    const { id } = await server.createTask({ input: JSON.stringify({ steps: 1000 }), agent: "bench" }, auth);
    // 1,000 steps of usage, tool_call, tool_result, then the answer's usage and the result.
    for (let tries = 0; (await rest<{ status: string }>(`/tasks/${id}`)).status !== "completed"; tries++) {
      expect(tries).toBeLessThan(400);
      await Bun.sleep(50);
    }
    const stored = await storedEvents(id);
    expect(stored.length).toBe(3002);
    const page = await openConsole(`#/tasks/${id}`);
    const done = await page.waitFor<TimelineState>(`(() => { const t = ${TIMELINE}; return t.result && t; })()`, "the whole timeline", 60_000);
    expect(done.count).toBe(3002);
    await expectEveryEventOnce(page, id);
    // The page still answers: the list and the form work.
    await page.type("#task-input", "What is 2+2?");
    await page.type("#task-agent", "default");
    await page.click("#start-task");
    await page.waitFor(`location.hash !== ${JSON.stringify(`#/tasks/${id}`)} && document.querySelector("#timeline li.entry.result")`, "a new task after the long one");
    expect(page.errors()).toEqual([]);
  }, 90_000);

  test("the server restarts mid-task: the page shows it reconnecting, then resumes and completes with every event once", async () => {
    const dataDir = tempDir();
    let first: TestServer | undefined = await startTestServer({ dataDir, agents: [{ name: "slow", model: "demo/slow" }], config: { apiKey: KEY } });
    let second: TestServer | undefined;
    try {
      const port = first.port;
      const { id } = await first.createTask({ input: `What is ${Array.from({ length: 12 }, (_, index) => index + 1).join(" + ")}?` }, auth);
      const page = await browser.open(`${first.baseUrl}/#/tasks/${id}`);
      await page.waitFor(`document.getElementById("key-dialog").open`, "the key prompt");
      await page.type("#key-input", KEY);
      await page.click("#key-submit");
      await page.waitFor(`document.querySelector("#timeline > li.typing")`, "the first step typing");
      // A stop hands the running task over (watchers get 1001); the next start resumes it from its log.
      await first.close({ keepData: true });
      first = undefined;
      await page.waitFor(`document.getElementById("watch-state").textContent.startsWith("reconnecting")`, "the reconnecting state");
      second = await startTestServer({ dataDir, agents: [{ name: "slow", model: "demo/slow" }], config: { apiKey: KEY, port } });
      const done = await page.waitFor<TimelineState>(`(() => { const t = ${TIMELINE}; return t.result && t; })()`, "the result after the restart", 30_000);
      expect(done.kinds).toContain("resumed");
      expect(done.result).toContain("= 78");
      expect(await page.evaluate(`document.getElementById("watch-state").textContent`)).toBe("");
      const stored = (await (await second.http(`/tasks/${id}/events`, { headers: auth })).json()) as { events: { seq: number }[] };
      expect(done.seqs).toEqual(stored.events.map((event) => event.seq));
      expect(page.errors()).toEqual([]);
    } finally {
      await first?.close();
      await second?.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  test("server text is shown as text, never as markup", async () => {
    const page = await openConsole();
    const input = `<img src=x onerror="window.__pwned=1"> What is 1+1? <b>bold</b>`;
    await page.type("#task-input", input);
    await page.click("#start-task");
    await page.waitFor(`document.querySelector("#timeline li.entry.result")`, "the result");
    await page.waitFor(`document.getElementById("task-input-text").textContent === ${JSON.stringify(input)}`, "the input shown as text");
    expect(await page.evaluate(`document.querySelectorAll("#task-pane img, #task-list img, #task-pane b, #task-list b").length`)).toBe(0);
    expect(await page.evaluate(`window.__pwned === undefined`)).toBe(true);
    expect(page.errors()).toEqual([]);
  });
});

describe("the compiled binary", () => {
  let workDir: string;
  beforeAll(() => {
    workDir = tempDir();
  });
  afterAll(() => rmSync(workDir, { recursive: true, force: true }));

  test("serves the console at / with its bundled script and styles, and /ui redirects there", async () => {
    const binary = buildBinary(workDir);
    const node = await launchBinary(binary, ["serve"], { AGENTKIT_DATA_DIR: `${workDir}/data` }, { cwd: workDir });
    try {
      const page = await fetch(`${node.base}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get("content-type")).toStartWith("text/html");
      const html = await page.text();
      expect(html).toContain("<title>agentkit console</title>");
      const script = /<script[^>]+src="([^"]+)"/.exec(html)?.[1];
      const style = /<link[^>]+rel="stylesheet"[^>]+href="([^"]+)"/.exec(html)?.[1];
      expect(script).toBeDefined();
      expect(script).not.toContain("app.ts"); // bundled, not the source
      const js = await fetch(new URL(script!, node.base));
      expect(js.status).toBe(200);
      expect(js.headers.get("content-type")).toMatch(/^(text|application)\/javascript/);
      const code = await js.text();
      expect(code).toContain("agentkit.apiKey"); // the console's own code, client included
      expect(code).toContain("agentkit.key.");
      const css = await fetch(new URL(style!, node.base));
      expect(css.status).toBe(200);
      expect(css.headers.get("content-type")).toStartWith("text/css");

      const ui = await fetch(`${node.base}/ui`, { redirect: "manual" });
      expect(ui.status).toBe(308);
      expect(ui.headers.get("location")).toBe("/");
      // The API is still the API.
      expect((await fetch(`${node.base}/health`)).status).toBe(200);
      // … and the console's pages are routes like the others: another method is a 405 with Allow.
      const post = await fetch(`${node.base}/`, { method: "POST" });
      expect(post.status).toBe(405);
      expect(post.headers.get("allow")).toBe("GET, HEAD");

      if (chromium) {
        // And the page runs: with no key configured it loads the agents without asking.
        const browser = await launchChromium(chromium);
        try {
          const tab = await browser.open(`${node.base}/`);
          await tab.waitFor(`document.querySelectorAll("#task-agent option").length === 1`, "the agents in the form");
          expect(await tab.evaluate(`document.getElementById("key-dialog").open`)).toBe(false);
          expect(tab.errors()).toEqual([]);
        } finally {
          await browser.close();
        }
      }
    } finally {
      node.child.kill("SIGTERM");
      await node.exited;
    }
  }, 120_000);
});
