/**
 * The PostgreSQL store's cluster side (`ClusterStore`, issue 9) on a real server: several store
 * instances on one database stand for several nodes. Claims never hand a task out twice; an expired
 * lease is taken over with a new attempt that fences the old run; release, cancel requests, the
 * signals (events announced by appends, cancel, probe) and a LISTEN connection that reconnects, or
 * is made to.
 *
 * No timed assertions: waits poll with generous bounds; an absence is proved by a later sentinel
 * signal (notifications of one database arrive in commit order).
 */
import { SQL } from "bun";
import { afterEach, expect, test } from "bun:test";
import {
  createPostgresStore,
  formatSignal,
  LISTEN_APPLICATION_NAME,
  MIGRATIONS,
  parseSignal,
  type PostgresTaskStore,
} from "../../src/store/postgres-store.ts";
import { type ClusterSignal, FencedError } from "../../src/store/store.ts";
import { describePostgres, withSql } from "../helpers/postgres.ts";
import { newTask, outcome } from "./conformance.ts";

/** Polls `check` until it is truthy (bounded generously; never a timing assertion). */
async function until<T>(check: () => T | Promise<T>, what: string, boundMs = 15_000): Promise<T> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** A listener that records every signal and every (re)listen. */
async function record(store: PostgresTaskStore) {
  const signals: ClusterSignal[] = [];
  let listens = 0;
  const stop = await store.listen(
    (signal) => signals.push(signal),
    () => listens++,
  );
  return {
    signals,
    get listens() {
      return listens;
    },
    stop,
    /** Waits for a signal matching `match`; returns it. */
    waitFor: (match: (signal: ClusterSignal) => boolean, what: string) => until(() => signals.find(match), what),
  };
}

test("signal payloads: compact, parsed back exactly; malformed ones are ignored", () => {
  const signals: ClusterSignal[] = [
    { kind: "queued" },
    { kind: "cancel", taskId: "0b9e-…-uuid" },
    { kind: "cancel", taskId: "a:b:c" },
    { kind: "events", taskId: "t1", lastSeq: 0 },
    { kind: "events", taskId: "with:colon", lastSeq: 123456789 },
    { kind: "probe", node: "host-1:8080", nonce: "n0nce" },
    { kind: "parked", taskId: "t:1" },
    // An MCP call's registry key holds U+0000 separators (PostgreSQL text cannot): JSON escapes them.
    { kind: "cancel_call", key: "alice\u0000sess:1\u0000number:7", reason: "changed my mind: ☕ \"quoted\"" },
  ];
  expect(signals.map(formatSignal)).toEqual([
    "q",
    "c:0b9e-…-uuid",
    "c:a:b:c",
    "e:t1:0",
    "e:with:colon:123456789",
    "p:host-1:8080:n0nce",
    "w:t:1",
    'x:["alice\\u0000sess:1\\u0000number:7","changed my mind: ☕ \\"quoted\\""]',
  ]);
  for (const signal of signals) expect(parseSignal(formatSignal(signal))).toEqual(signal);
  for (const bad of ["", "x", "q:", "c:", "e:", "e:t", "e:t:", "e::1", "e:t:-1", "e:t:1.5", "e:t:x", "p:", "p:n", "p:n:", "p::x", "Q", "hello", "x:", "w:", "x:[", 'x:["k"]', 'x:["",""]', 'x:[1,"r"]', 'x:{"k":"r"}']) {
    expect({ bad, parsed: parseSignal(bad) }).toEqual({ bad, parsed: undefined });
  }
  expect(() => formatSignal({ kind: "probe", node: "n", nonce: "a:b" })).toThrow();
  expect(() => formatSignal({ kind: "cancel", taskId: "x".repeat(8000) })).toThrow();
});

describePostgres("PostgreSQL cluster store", (pg) => {
  const opened: PostgresTaskStore[] = [];
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });
  /** `count` nodes on one new database. */
  async function nodes(count: number, max = 4): Promise<{ url: string; stores: PostgresTaskStore[] }> {
    const url = await pg.createDatabase();
    const stores: PostgresTaskStore[] = [];
    for (let index = 0; index < count; index++) {
      const store = await createPostgresStore({ url, max });
      opened.push(store);
      stores.push(store);
    }
    return { url, stores };
  }
  const leaseRow = (url: string, id: string) =>
    withSql(url, async (sql) => {
      const [row] = await sql`SELECT attempt, lease_owner, lease_expires_at > now() AS live, cancel_requested FROM tasks WHERE id = ${id}`;
      return { attempt: Number(row.attempt), owner: row.lease_owner as string | null, live: row.live as boolean | null, cancel: row.cancel_requested as boolean };
    });

  test("schema 1 → 2: cancel_requested and the claim indexes; a task left running without a lease is taken over", async () => {
    const url = await pg.createDatabase();
    await withSql(url, async (sql) => {
      await sql`CREATE TABLE schema_migrations (version integer PRIMARY KEY, description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`;
      await sql.unsafe(MIGRATIONS[0]!.sql);
      await sql`INSERT INTO schema_migrations (version, description) VALUES (1, 'tasks and events')`;
      await sql`INSERT INTO tasks (id, owner, agent, input, metadata, status, created_at, started_at, attempt, last_seq)
                VALUES ('old', 'anonymous', 'default', '"hi"', '{}', 'running', now(), '2026-01-01T00:00:01Z', 1, 3)`;
    });
    const store = await createPostgresStore({ url });
    opened.push(store);
    expect(store.migratedFrom).toBe(1);
    await withSql(url, async (sql) => {
      const indexes = (await sql`SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'`).map((row: { indexname: string }) => row.indexname);
      expect(indexes).toEqual(expect.arrayContaining(["tasks_queued", "tasks_leases"]));
      const [column] = await sql`SELECT data_type, column_default FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'cancel_requested'`;
      expect(column).toMatchObject({ data_type: "boolean", column_default: "false" });
    });
    const claim = await store.claimNext("node-a", 60_000, new Date("2026-05-05T00:00:00.000Z"));
    expect(claim).toMatchObject({ attempt: 2, takeover: true, cancelRequested: false });
    expect(claim!.task).toMatchObject({ id: "old", status: "running", started_at: "2026-01-01T00:00:01.000Z", last_seq: 3 });
    expect(await store.claimNext("node-a", 60_000, new Date())).toBeUndefined();
  });

  test("a thread's next task never starts before its predecessor finished, however stale the time its claim was asked with; other tasks keep the node's time", async () => {
    const { stores } = await nodes(1);
    const store = stores[0]!;
    await store.createThread({ id: "thr", owner: "anonymous", createdAt: new Date() });
    await store.createTask(newTask("first", { threadId: "thr" }));
    await store.createTask(newTask("second", { threadId: "thr" }));
    await store.createTask(newTask("alone"));
    const first = (await store.claimNext("node-a", 60_000, new Date()))!;
    expect(first.task.id).toBe("first");
    const finishedAt = new Date(Date.now() + 50);
    expect(await store.finishTask("first", { ...outcome("completed"), finishedAt }, 1, "{\"type\":\"result\"}", first.attempt)).toBe(true);
    // The time read when the claim was asked for, before the query waited for a connection: stale.
    const stale = new Date(finishedAt.getTime() - 2);
    const second = (await store.claimNext("node-a", 60_000, stale))!;
    expect(second.task.id).toBe("second");
    expect(second.task.started_at).toBe(finishedAt.toISOString());
    const alone = (await store.claimNext("node-a", 60_000, stale))!;
    expect(alone.task).toMatchObject({ id: "alone", started_at: stale.toISOString() });
  });

  test("many claimers on two nodes: every task is claimed exactly once, oldest first per claimer", async () => {
    const { url, stores } = await nodes(2, 6);
    const count = 150;
    for (let index = 0; index < count; index++) await stores[0]!.createTask(newTask(`t${String(index).padStart(3, "0")}`));
    expect(await stores[1]!.countQueued()).toBe(count);
    const startedAt = new Date("2026-05-05T00:00:00.000Z")
    const claims = await Promise.all(
      Array.from({ length: 12 }, async (_, claimer) => {
        const node = `node-${claimer % 2}`;
        const store = stores[claimer % 2]!;
        const mine: { id: string; node: string; attempt: number; takeover: boolean }[] = [];
        for (;;) {
          const claim = await store.claimNext(node, 60_000, startedAt);
          if (!claim) return mine;
          expect(claim.task).toMatchObject({ status: "running", started_at: startedAt.toISOString() });
          mine.push({ id: claim.task.id, node, attempt: claim.attempt, takeover: claim.takeover });
        }
      }),
    );
    const all = claims.flat();
    expect(all.map((claim) => claim.id).toSorted()).toEqual(Array.from({ length: count }, (_, index) => `t${String(index).padStart(3, "0")}`));
    expect(all.every((claim) => claim.attempt === 1 && !claim.takeover)).toBe(true);
    for (const mine of claims) expect(mine.map((claim) => claim.id)).toEqual(mine.map((claim) => claim.id).toSorted());
    expect(await stores[0]!.countQueued()).toBe(0);
    for (const claim of all.slice(0, 10)) expect(await leaseRow(url, claim.id)).toMatchObject({ attempt: 1, owner: claim.node, live: true });
  });

  test("an expired lease is taken over by another node with attempt + 1: the old node's renew loses it, its writes are fenced", async () => {
    const { url, stores } = await nodes(2);
    const [a, b] = stores as [PostgresTaskStore, PostgresTaskStore];
    await a.createTask(newTask("t"));
    await a.createTask(newTask("long"));
    const first = (await a.claimNext("node-a", 200, new Date("2026-05-05T00:00:00.000Z")))!;
    expect(first).toMatchObject({ attempt: 1, takeover: false, cancelRequested: false });
    expect(first.task.id).toBe("t");
    const long = (await a.claimNext("node-a", 60_000, new Date()))!;
    expect(long.task.id).toBe("long");
    await a.appendEvents("t", [{ seq: 1, frame: '{"by":"a"}' }], first.attempt);
    // The database's clock decides: once 200 ms have passed there, node b takes the task over.
    const second = (await until(() => b.claimNext("node-b", 60_000, new Date("2026-05-06T00:00:00.000Z")), "the takeover"))!;
    expect(second).toMatchObject({ attempt: 2, takeover: true, cancelRequested: false });
    expect(second.task).toMatchObject({ id: "t", status: "running", last_seq: 1, started_at: "2026-05-05T00:00:00.000Z" });
    // The long lease is not expired: nothing else to claim.
    expect(await b.claimNext("node-b", 60_000, new Date())).toBeUndefined();

    const renewed = await a.renewLeases("node-a", [{ taskId: "t", attempt: 1 }, { taskId: "long", attempt: 1 }], 60_000);
    expect([...renewed.held]).toEqual(["long"]);
    expect(await leaseRow(url, "t")).toMatchObject({ attempt: 2, owner: "node-b", live: true });
    // Node a renewing under b's name but with its own attempt holds nothing either.
    expect((await a.renewLeases("node-b", [{ taskId: "t", attempt: 1 }], 60_000)).held.size).toBe(0);

    await expect(a.appendEvents("t", [{ seq: 2, frame: '{"by":"a"}' }], 1)).rejects.toBeInstanceOf(FencedError);
    await expect(a.finishTask("t", outcome("completed"), 2, '{"by":"a"}', 1)).rejects.toBeInstanceOf(FencedError);
    await b.appendEvents("t", [{ seq: 2, frame: '{"by":"b"}' }], 2);
    expect((await b.renewLeases("node-b", [{ taskId: "t", attempt: 2 }], 60_000)).held).toEqual(new Set(["t"]));
    expect(await b.finishTask("t", outcome("completed"), 3, '{"by":"b"}', 2)).toBe(true);
    expect((await a.events("t", 0, 10)).map((event) => event.frame)).toEqual(['{"by":"a"}', '{"by":"b"}', '{"by":"b"}']);
    // An ended task is held by nobody: its lease is gone, and it is never claimed again.
    expect((await b.renewLeases("node-b", [{ taskId: "t", attempt: 2 }], 60_000)).held.size).toBe(0);
    expect(await leaseRow(url, "t")).toMatchObject({ owner: null, live: null });
  });

  test("nextLeaseExpiry: when the soonest lease held by another node runs out (database clock); none of one's own", async () => {
    const { stores } = await nodes(2);
    const [a, b] = stores as [PostgresTaskStore, PostgresTaskStore];
    expect(await b.nextLeaseExpiry("node-b")).toBeUndefined();
    await a.createTask(newTask("x"));
    await a.createTask(newTask("y"));
    await a.claimNext("node-a", 60_000, new Date());
    await a.claimNext("node-a", 5_000, new Date());
    const soonest = (await b.nextLeaseExpiry("node-b"))!;
    expect(soonest).toBeGreaterThan(0);
    expect(soonest).toBeLessThanOrEqual(5_000);
    expect(await a.nextLeaseExpiry("node-a")).toBeUndefined();
    await a.releaseLeases("node-a", [{ taskId: "y", attempt: 1 }]);
    expect((await b.nextLeaseExpiry("node-b"))!).toBeLessThanOrEqual(0);
  });

  test("release makes a task claimable at once, and only by the node and attempt that hold it", async () => {
    const { stores } = await nodes(3);
    const [a, b, c] = stores as [PostgresTaskStore, PostgresTaskStore, PostgresTaskStore];
    await a.createTask(newTask("r"));
    const claim = (await a.claimNext("node-a", 60_000, new Date()))!;
    expect(await b.claimNext("node-b", 60_000, new Date())).toBeUndefined();
    await b.releaseLeases("node-b", [{ taskId: "r", attempt: 1 }]); // not b's lease: nothing happens
    await a.releaseLeases("node-a", [{ taskId: "r", attempt: 0 }]); // not this attempt: nothing happens
    expect(await b.claimNext("node-b", 60_000, new Date())).toBeUndefined();
    await a.releaseLeases("node-a", [{ taskId: claim.task.id, attempt: claim.attempt }]);
    expect(await b.claimNext("node-b", 60_000, new Date())).toMatchObject({ attempt: 2, takeover: true, task: { id: "r" } });
    // The old holder's release after the takeover changes nothing: b keeps it.
    await a.releaseLeases("node-a", [{ taskId: "r", attempt: 1 }]);
    expect(await c.claimNext("node-c", 60_000, new Date())).toBeUndefined();
    await a.releaseLeases("node-a", []);
    expect((await a.renewLeases("node-a", [], 1000)).held.size).toBe(0);
  });

  test("a cancel request: a signal to every listener, seen by renew and by claimNext; never on an ended task", async () => {
    const { url, stores } = await nodes(3);
    const [runner, api, idle] = stores as [PostgresTaskStore, PostgresTaskStore, PostgresTaskStore];
    const heard = await record(runner);
    await api.createTask(newTask("running"));
    await api.createTask(newTask("queued"));
    await api.createTask(newTask("ended"));
    await api.finishTask("ended", outcome("cancelled"), 1, "{}");
    const claim = (await runner.claimNext("node-r", 60_000, new Date()))!;
    expect(claim.task.id).toBe("running");

    await api.requestCancel("running");
    await heard.waitFor((signal) => signal.kind === "cancel" && signal.taskId === "running", "the cancel signal");
    const renewed = await runner.renewLeases("node-r", [{ taskId: "running", attempt: claim.attempt }], 60_000);
    expect(renewed).toEqual({ held: new Set(["running"]), cancelRequested: new Set(["running"]), inputsPending: new Set() });

    await api.requestCancel("queued");
    expect(await idle.claimNext("node-i", 60_000, new Date())).toMatchObject({ task: { id: "queued" }, cancelRequested: true });

    await api.requestCancel("ended");
    await api.requestCancel("missing");
    await api.signal({ kind: "queued" }); // the sentinel: sent after both, so heard after them
    await heard.waitFor((signal) => signal.kind === "queued", "the sentinel");
    const cancels = heard.signals.filter((signal) => signal.kind === "cancel").map((signal) => (signal as { taskId: string }).taskId);
    expect(cancels).toEqual(["running", "queued"]);
    expect(await leaseRow(url, "ended")).toMatchObject({ cancel: false });
    await heard.stop();
  });

  test("appends and finishes announce their events to listeners on other nodes (a hint with the last seq); a refused write announces nothing", async () => {
    const { stores } = await nodes(2);
    const [writer, watcher] = stores as [PostgresTaskStore, PostgresTaskStore];
    const heard = await record(watcher);
    await writer.createTask(newTask("e"));
    const claim = (await writer.claimNext("node-w", 60_000, new Date()))!;
    await writer.appendEvents("e", [{ seq: 1, frame: "1" }, { seq: 2, frame: "2" }], claim.attempt);
    await heard.waitFor((signal) => signal.kind === "events" && signal.taskId === "e" && signal.lastSeq === 2, "events up to 2");
    for (let seq = 3; seq <= 20; seq++) await writer.appendEvents("e", [{ seq, frame: String(seq) }], claim.attempt);
    await heard.waitFor((signal) => signal.kind === "events" && signal.lastSeq === 20, "events up to 20");
    // Refused writes, some reaching seqs the log never has (up to 30): an announcement of them is a lie.
    const upTo30 = (from: number, frame: string) => Array.from({ length: 31 - from }, (_, index) => ({ seq: from + index, frame }));
    await expect(writer.appendEvents("e", [{ seq: 20, frame: "dup" }])).rejects.toThrow("not the next in sequence");
    await expect(writer.appendEvents("e", [{ seq: 30, frame: "gap" }], claim.attempt)).rejects.toThrow("not the next in sequence");
    await expect(writer.appendEvents("e", [{ seq: 21, frame: "stale" }], claim.attempt - 1)).rejects.toBeInstanceOf(FencedError);
    await expect(writer.appendEvents("e", upTo30(21, "stale"), claim.attempt - 1)).rejects.toBeInstanceOf(FencedError);
    expect(await writer.finishTask("e", outcome("completed"), 21, "{}", claim.attempt)).toBe(true);
    await heard.waitFor((signal) => signal.kind === "events" && signal.lastSeq >= 21, "the result"); // (beyond 21: checked below)
    expect(await writer.finishTask("e", outcome("failed"), 22, "{}")).toBe(false);
    await expect(writer.appendEvents("e", upTo30(22, "late"), claim.attempt)).rejects.toThrow("not the next in sequence");
    await writer.signal({ kind: "probe", node: "node-w", nonce: "sentinel" });
    await heard.waitFor((signal) => signal.kind === "probe" && signal.nonce === "sentinel", "the sentinel");
    const seqs = heard.signals.flatMap((signal) => (signal.kind === "events" ? [signal.lastSeq] : []));
    // Coalesced announcements may skip seqs; never out of order, never beyond what was stored.
    expect(seqs).toEqual(seqs.toSorted((x, y) => x - y));
    expect(seqs.at(-1)).toBe(21);
    expect(seqs.every((seq) => seq <= 21)).toBe(true);
    await heard.stop();
  });

  test("every kind of signal reaches every listener, the sender's own included; malformed payloads are ignored", async () => {
    const { url, stores } = await nodes(2);
    const [a, b] = stores as [PostgresTaskStore, PostgresTaskStore];
    const own = await record(a);
    const other = await record(b);
    expect(own.listens).toBe(1);
    await withSql(url, (sql) => sql`SELECT pg_notify('agentkit', 'garbage'), pg_notify('agentkit', 'e:x:notanumber')`);
    const sent: ClusterSignal[] = [
      { kind: "queued" },
      { kind: "cancel", taskId: "c1" },
      { kind: "events", taskId: "t:1", lastSeq: 7 },
      { kind: "probe", node: "node-a", nonce: "n1" },
    ];
    for (const signal of sent) await a.signal(signal);
    for (const listener of [own, other]) {
      await until(() => listener.signals.length >= sent.length, "all signals");
      expect(listener.signals).toEqual(sent);
    }
    await own.stop();
    await other.stop();
  });

  test("a listener whose connection is killed reconnects by itself: onListen runs again, later signals arrive", async () => {
    const { url, stores } = await nodes(2);
    const [a, b] = stores as [PostgresTaskStore, PostgresTaskStore];
    const heard = await record(a);
    const terminated = await withSql(url, async (sql) =>
      Number(
        (
          await sql`SELECT count(pg_terminate_backend(pid))::integer AS n FROM pg_stat_activity
                    WHERE application_name = ${LISTEN_APPLICATION_NAME} AND datname = current_database()`
        )[0].n,
      ),
    );
    expect(terminated).toBe(1);
    await until(() => heard.listens >= 2, "the relisten");
    await b.signal({ kind: "cancel", taskId: "after-reconnect" });
    await heard.waitFor((signal) => signal.kind === "cancel" && signal.taskId === "after-reconnect", "a signal after the reconnect");
    await heard.stop();
  });

  test("a half-open LISTEN connection: stop() does not hang on it, and listening again opens a new connection that works", async () => {
    const { url, stores } = await nodes(1);
    const sender = stores[0]!;
    // A TCP proxy to the server that can freeze its open connections: bytes stop flowing both ways
    // while the sockets stay open — what a dropped route or a dead NAT entry looks like.
    const target = new URL(url);
    type Pipe = { peer?: import("bun").Socket<unknown>; frozen: boolean; queued: Uint8Array[] };
    const pipes = new Set<Pipe>();
    const proxy = Bun.listen<Pipe>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        async open(client) {
          const pipe: Pipe = { frozen: false, queued: [] };
          client.data = pipe;
          pipes.add(pipe);
          pipe.peer = await Bun.connect({
            hostname: target.hostname,
            port: Number(target.port),
            socket: {
              data(_server, bytes) {
                if (!pipe.frozen) client.write(bytes);
              },
              close() {
                client.end();
              },
            },
          });
          for (const bytes of pipe.queued.splice(0)) pipe.peer.write(bytes);
        },
        data(client, bytes) {
          const pipe = client.data;
          if (pipe.frozen) return;
          if (pipe.peer) pipe.peer.write(bytes);
          else pipe.queued.push(new Uint8Array(bytes));
        },
        close(client) {
          client.data.peer?.end();
          pipes.delete(client.data);
        },
      },
    });
    const proxied = new URL(url);
    proxied.port = String(proxy.port);
    const listening = await createPostgresStore({ url: proxied.href, max: 1 });
    try {
      const first = await record(listening);
      await sender.signal({ kind: "probe", node: "n", nonce: "before" });
      await first.waitFor((signal) => signal.kind === "probe" && signal.nonce === "before", "a probe before the freeze");
      for (const pipe of pipes) pipe.frozen = true; // half-open from here on: nothing is lost to the sockets, nothing arrives
      await first.stop(); // must not wait on the dead connection
      const second = await record(listening);
      await sender.signal({ kind: "probe", node: "n", nonce: "after" });
      await second.waitFor((signal) => signal.kind === "probe" && signal.nonce === "after", "a probe on the new connection");
      expect(first.signals.some((signal) => signal.kind === "probe" && signal.nonce === "after")).toBe(false);
      await second.stop();
    } finally {
      proxy.stop(true);
      await listening.close();
    }
  });

  test("ping goes on a connection of its own: a pool whose connections wait on a lock does not make the database look down", async () => {
    const { url, stores } = await nodes(1, 1);
    const store = stores[0]!;
    const locker = new SQL(url, { max: 1 });
    const held = await locker.reserve();
    try {
      await held`BEGIN`;
      await held`LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE`;
      const blocked = store.getTask("any"); // takes the pool's only connection, and waits on the lock
      await Bun.sleep(200);
      expect(await store.ping(1_000)).toBe(true);
      await held`ROLLBACK`;
      expect(await blocked).toBeUndefined();
    } finally {
      held.release();
      await locker.close();
    }
  });

  test("ping: true on a live database, false once the store cannot reach it", async () => {
    const { url, stores } = await nodes(1);
    expect(await stores[0]!.ping(5_000)).toBe(true);
    const store = await createPostgresStore({ url, max: 1 });
    await store.close();
    expect(await store.ping(1_000)).toBe(false);
  });
});

test("the input signal: `i:<taskId>`, parsed back exactly (task ids may hold ':'); an empty one is ignored", () => {
  for (const taskId of ["t1", "a:b:c", "0b9e-…-uuid"]) {
    const signal: ClusterSignal = { kind: "input", taskId };
    expect(formatSignal(signal)).toBe(`i:${taskId}`);
    expect(parseSignal(formatSignal(signal))).toEqual(signal);
  }
  expect(parseSignal("i:")).toBeUndefined();
  expect(parseSignal("i")).toBeUndefined();
  expect(() => formatSignal({ kind: "input", taskId: "x".repeat(8000) })).toThrow();
});

describePostgres("PostgreSQL cluster store: waiting, inputs, threads", (pg) => {
  const opened: PostgresTaskStore[] = [];
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });
  async function nodes(count: number, max = 4): Promise<{ url: string; stores: PostgresTaskStore[] }> {
    const url = await pg.createDatabase();
    const stores: PostgresTaskStore[] = [];
    for (let index = 0; index < count; index++) {
      const store = await createPostgresStore({ url, max });
      opened.push(store);
      stores.push(store);
    }
    return { url, stores };
  }
  async function leaseOf(url: string, id: string) {
    const sql = new SQL(url, { max: 1 });
    try {
      const [row] = await sql`SELECT lease_owner, lease_expires_at FROM tasks WHERE id = ${id}`;
      return { owner: row.lease_owner as string | null, expires: row.lease_expires_at as Date | null };
    } finally {
      await sql.close();
    }
  }
  const later = new Date(Date.now() + 3600_000);

  test("claimNext takes a thread's tasks one at a time, in order: not while an earlier one is queued, running or waiting", async () => {
    const { stores } = await nodes(2);
    const [a, b] = stores as [PostgresTaskStore, PostgresTaskStore];
    await a.createThread({ id: "th", owner: "anonymous", createdAt: new Date() });
    await a.createTask(newTask("t1", { threadId: "th" }));
    await a.createTask(newTask("t2", { threadId: "th" }));
    await a.createTask(newTask("loose"));
    await a.createTask(newTask("t3", { threadId: "th" }));

    // t1 runs: t2 and t3 wait behind it; the task outside the thread is claimed.
    const first = (await a.claimNext("node-a", 60_000, new Date()))!;
    expect(first.task.id).toBe("t1");
    expect((await b.claimNext("node-b", 60_000, new Date()))?.task.id).toBe("loose");
    expect(await b.claimNext("node-b", 60_000, new Date())).toBeUndefined();

    // t1 waits for a person: still the thread's head.
    expect(await a.waitTask("t1", later, first.attempt)).toBe(true);
    expect(await b.claimNext("node-b", 60_000, new Date())).toBeUndefined();

    // Decided: t1 is queued again and is claimed before (not beside) t2.
    expect(await b.appendWhileWaiting("t1", [{ seq: 1, frame: "decided" }], true)).toBe(true);
    const again = (await b.claimNext("node-b", 60_000, new Date()))!;
    expect(again).toMatchObject({ attempt: first.attempt + 1, takeover: false, task: { id: "t1" } });
    expect(await a.claimNext("node-a", 60_000, new Date())).toBeUndefined();

    // t1 ends: t2 is next, then (once t2 ends, cancelled) t3.
    expect(await b.finishTask("t1", outcome("completed"), 2, "{}", again.attempt)).toBe(true);
    const second = (await a.claimNext("node-a", 60_000, new Date()))!;
    expect(second.task.id).toBe("t2");
    expect(await b.claimNext("node-b", 60_000, new Date())).toBeUndefined();
    expect(await a.finishTask("t2", outcome("cancelled"), 1, "{}", second.attempt)).toBe(true);
    expect((await b.claimNext("node-b", 60_000, new Date()))?.task.id).toBe("t3");
  });

  test("many claimers racing on a thread's queued tasks: only its first task is claimed", async () => {
    const { stores } = await nodes(2, 6);
    for (let round = 0; round < 5; round++) {
      const thread = `th${round}`;
      await stores[0]!.createThread({ id: thread, owner: "anonymous", createdAt: new Date() });
      for (let index = 0; index < 5; index++) await stores[round % 2]!.createTask(newTask(`${thread}-t${index}`, { threadId: thread }));
      const claims = await Promise.all(
        Array.from({ length: 10 }, (_, claimer) => stores[claimer % 2]!.claimNext(`node-${claimer % 2}`, 60_000, new Date())),
      );
      expect(claims.filter(Boolean).map((claim) => claim!.task.id)).toEqual([`${thread}-t0`]);
      const head = claims.find(Boolean)!;
      expect(await stores[0]!.finishTask(head.task.id, outcome("completed"), 1, "{}", head.attempt)).toBe(true);
      // The next round's thread starts empty: nothing of this one is claimable but t1 now; take the rest in order.
      for (let index = 1; index < 5; index++) {
        const next = (await stores[index % 2]!.claimNext("node-x", 60_000, new Date()))!;
        expect(next.task.id).toBe(`${thread}-t${index}`);
        expect(await stores[1]!.claimNext("node-y", 60_000, new Date())).toBeUndefined();
        await stores[0]!.finishTask(next.task.id, outcome("completed"), 1, "{}", next.attempt);
      }
    }
  });

  test("a parked task is no node's: waitTask drops its lease; renew does not hold it, nobody takes it over; a decision makes it claimable", async () => {
    const { url, stores } = await nodes(2);
    const [a, b] = stores as [PostgresTaskStore, PostgresTaskStore];
    await a.createTask(newTask("p"));
    const claim = (await a.claimNext("node-a", 60_000, new Date("2026-05-05T00:00:00.000Z")))!;
    await a.appendEvents("p", [{ seq: 1, frame: "asked" }], claim.attempt);
    expect(await a.waitTask("p", later, claim.attempt)).toBe(true);
    expect(await leaseOf(url, "p")).toEqual({ owner: null, expires: null });
    expect((await a.renewLeases("node-a", [{ taskId: "p", attempt: claim.attempt }], 60_000)).held.size).toBe(0);
    expect(await b.claimNext("node-b", 60_000, new Date())).toBeUndefined();
    expect(await b.nextLeaseExpiry("node-b")).toBeUndefined();
    // The run that parked it can write nothing more to it.
    await expect(a.appendEvents("p", [{ seq: 2, frame: "stray" }], claim.attempt)).rejects.toThrow("not the next in sequence");

    expect(await b.appendWhileWaiting("p", [{ seq: 2, frame: "approved" }], true)).toBe(true);
    const resumed = (await b.claimNext("node-b", 60_000, new Date("2026-05-06T00:00:00.000Z")))!;
    expect(resumed).toMatchObject({ attempt: claim.attempt + 1, takeover: false, task: { id: "p", status: "running", last_seq: 2, started_at: "2026-05-05T00:00:00.000Z" } });
    expect((await leaseOf(url, "p")).owner).toBe("node-b");
    await expect(a.appendEvents("p", [{ seq: 3, frame: "stale" }], claim.attempt)).rejects.toBeInstanceOf(FencedError);
  });

  test("renewLeases reports the held tasks that have inputs waiting in their inbox, until they are deleted", async () => {
    const { stores } = await nodes(2);
    const [runner, api] = stores as [PostgresTaskStore, PostgresTaskStore];
    await api.createTask(newTask("r"));
    await api.createTask(newTask("s"));
    await api.createTask(newTask("elsewhere"));
    const r = (await runner.claimNext("node-r", 60_000, new Date()))!;
    const s = (await runner.claimNext("node-r", 60_000, new Date()))!;
    const other = (await api.claimNext("node-o", 60_000, new Date()))!;
    expect(other.task.id).toBe("elsewhere");
    const leases = [
      { taskId: "r", attempt: r.attempt },
      { taskId: "s", attempt: s.attempt },
    ];
    expect((await runner.renewLeases("node-r", leases, 60_000)).inputsPending).toEqual(new Set());

    const input = (id: string) => ({ id, text: `steer ${id}`, by: "alice", createdAt: new Date() });
    expect(await api.addInput("r", input("i1"))).toBe(true);
    expect(await api.addInput("r", input("i2"))).toBe(true);
    expect(await api.addInput("elsewhere", input("i3"))).toBe(true);
    const renewed = await runner.renewLeases("node-r", leases, 60_000);
    expect(renewed).toEqual({ held: new Set(["r", "s"]), cancelRequested: new Set(), inputsPending: new Set(["r"]) });
    expect((await runner.pendingInputs("r")).map((pending) => pending.id)).toEqual(["i1", "i2"]);

    await runner.deleteInputs("r", ["i1"]);
    expect((await runner.renewLeases("node-r", leases, 60_000)).inputsPending).toEqual(new Set(["r"]));
    await runner.deleteInputs("r", ["i2"]);
    expect((await runner.renewLeases("node-r", leases, 60_000)).inputsPending).toEqual(new Set());
    // Another node's task with inputs is not reported to this one.
    expect((await api.renewLeases("node-o", [{ taskId: "elsewhere", attempt: other.attempt }], 60_000)).inputsPending).toEqual(new Set(["elsewhere"]));
  });

  test("a claim says whether the task has inputs waiting (a queued task hears no input signal)", async () => {
    const { stores } = await nodes(1);
    const [store] = stores as [PostgresTaskStore];
    await store.createTask(newTask("quiet"));
    await store.createTask(newTask("spoken-to"));
    expect(await store.addInput("spoken-to", { id: "i1", text: "also this", by: "alice", createdAt: new Date() })).toBe(true);
    expect(await store.claimNext("node-a", 60_000, new Date())).toMatchObject({ task: { id: "quiet" }, inputsPending: false });
    expect(await store.claimNext("node-a", 60_000, new Date())).toMatchObject({ task: { id: "spoken-to" }, inputsPending: true });
  });

  test("an input signal reaches every listener, the sender's own included", async () => {
    const { stores } = await nodes(2);
    const [a, b] = stores as [PostgresTaskStore, PostgresTaskStore];
    const heard: ClusterSignal[][] = [[], []];
    const stops = await Promise.all(
      [a, b].map((store, index) =>
        store.listen(
          (signal) => heard[index]!.push(signal),
          () => {},
        ),
      ),
    );
    await a.signal({ kind: "input", taskId: "task:with:colons" });
    for (const signals of heard) {
      await until(() => signals.some((signal) => signal.kind === "input"), "the input signal");
      expect(signals.filter((signal) => signal.kind !== "probe")).toEqual([{ kind: "input", taskId: "task:with:colons" }]);
    }
    for (const stop of stops) await stop();
  });
});
