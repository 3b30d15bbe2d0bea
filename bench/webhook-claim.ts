/**
 * Micro-benchmark (not part of `bun run bench`): what a fair webhook claim costs with 100,000 rows
 * due, on SQLite and on PostgreSQL, through the stores' own `claimWebhooks` / `intakeWebhooks`
 * (src/store/, schema 6 / migration 7), as the delivery worker calls them: 16 slots, 4 per
 * destination.
 *
 * Layouts of the due rows (all due before the claims start, written as ended tasks leave them, not
 * yet taken in):
 * - `few`:  4 destinations; one receiver that hangs holds 90,000 rows, due before anyone else's,
 *           and is full (its 4 deliveries in flight): every claim has to pass over it;
 * - `many`: 10,000 destinations of 10 rows each, interleaved; 2 of them are full.
 *
 * For each: the intake of the backlog (batches of 128, as the worker takes them in), then `claims`
 * claims in a row (of the 16 slots less the full destinations' 4 each), each claimed row recorded
 * as delivered before the next claim (timed apart: a record sets its destination's next due time
 * again, on PostgreSQL in a transaction of its own that locks the destination), as the worker would. Each call's time to its answer
 * (on PostgreSQL: round trips, the event loop free meanwhile; an SQLite intake also waits for a WAL
 * checkpoint under way), and how long it held the event loop: its synchronous part, up to its first
 * await (on SQLite all of a claim and all of an intake's transaction). Beside them: the longest gap
 * between ticks of a 1 ms interval meanwhile, whatever held the loop (a call, a record, the WAL
 * checkpoint's catch-up on the main thread, or another process on a loaded machine).
 *
 *   bun bench/webhook-claim.ts [claims = 300] [sqlite|postgres|both = both]
 *
 * PostgreSQL: AGENTKIT_BENCH_DATABASE_URL, else a throwaway cluster with durability on (bench/lib/postgres.ts).
 */
import { SQL } from "bun";
import { Database } from "bun:sqlite";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { postgresAvailability, startBenchPostgres } from "./lib/postgres.ts";
import { createPostgresStore } from "../src/store/postgres-store.ts";
import { createSqliteStore } from "../src/store/sqlite-store.ts";
import type { TaskStore } from "../src/store/store.ts";

const CLAIMS = Number(process.argv[2] ?? 300);
const which = process.argv[3] ?? "both";
const ROWS = 100_000;
const INTAKE_BATCH = 128;
const SLOTS = 16;
const PER_DESTINATION = 4;

interface Layout {
  name: string;
  /** The url of row `index` (rows are due in index order). */
  url(index: number): string;
  /** Destinations full at every claim (4 deliveries in flight each). */
  full: string[];
}

const LAYOUTS: Layout[] = [
  {
    name: "few (4 destinations; the hanging one, 90,000 rows due first, full)",
    url: (index) => (index < 90_000 ? `http://hangs.test/hook/${index}` : `http://ok${index % 3}.test/hook/${index}`),
    full: ["http://hangs.test"],
  },
  {
    name: "many (10,000 destinations of 10 rows; 2 full)",
    url: (index) => `http://d${index % 10_000}.test/hook/${index}`,
    full: [0, 1].map((n) => `http://d${n}.test`),
  },
];

const stats = (values: number[]) => {
  const sorted = values.toSorted((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return `median ${at(0.5).toFixed(2)} ms, p90 ${at(0.9).toFixed(2)}, p99 ${at(0.99).toFixed(2)}, max ${sorted.at(-1)!.toFixed(2)} (n=${values.length})`;
};
const load = () => loadavg().map((value) => value.toFixed(2)).join(" ");

/** The longest gap between ticks of a 1 ms interval while `run` runs: how long the event loop was held at most. */
async function longestGap<T>(run: () => Promise<T>): Promise<{ result: T; gapMs: number }> {
  let last = performance.now();
  let gap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 1);
  try {
    const result = await run();
    return { result, gapMs: gap };
  } finally {
    clearInterval(timer);
  }
}

async function measure(store: TaskStore, layout: Layout, due: Date, vacuum?: () => Promise<void>): Promise<void> {
  const intake: number[] = [];
  const intakeHeld: number[] = [];
  let taken = 0;
  const intakeWall = performance.now();
  const { gapMs: intakeGap } = await longestGap(async () => {
    for (;;) {
      const started = performance.now();
      const calling = store.intakeWebhooks(INTAKE_BATCH);
      const held = performance.now() - started; // the call's synchronous part: up to its first await
      const count = await calling;
      if (count === 0) break;
      intake.push(performance.now() - started);
      intakeHeld.push(held);
      taken += count;
      await Bun.sleep(0);
    }
  });
  console.log(
    `    intake of ${taken.toLocaleString("en")} rows, ${intake.length} batches of ${INTAKE_BATCH}: ${stats(intake)}; ${((performance.now() - intakeWall) / 1000).toFixed(2)} s in all; longest event-loop gap ${intakeGap.toFixed(1)} ms\n` +
      `      held the event loop (the call's synchronous part): ${stats(intakeHeld)}`,
  );
  await claims(store, layout, due, vacuum ? "right after the intake" : "");
  if (vacuum) {
    await vacuum();
    await claims(store, layout, due, "after VACUUM (as autovacuum leaves it)");
  }
}

async function claims(store: TaskStore, layout: Layout, due: Date, when: string): Promise<void> {
  const busy = new Map(layout.full.map((destination) => [destination, PER_DESTINATION]));
  const now = new Date(due.getTime() + 3_600_000);
  const times: number[] = [];
  const held: number[] = [];
  const records: number[] = [];
  let claimed = 0;
  const { gapMs } = await longestGap(async () => {
    for (let claim = 0; claim < CLAIMS; claim++) {
      const room = SLOTS - layout.full.length * PER_DESTINATION;
      const started = performance.now();
      const calling = store.claimWebhooks(now, room, 40_000, { perDestination: PER_DESTINATION, busy });
      held.push(performance.now() - started);
      const rows = await calling;
      times.push(performance.now() - started);
      claimed += rows.length;
      for (const row of rows) {
        if (busy.has(row.destination)) throw new Error(`a full destination was claimed: ${row.destination}`);
        const recording = performance.now();
        await store.recordWebhookAttempt(row.id, { outcome: "delivered", at: now }, now);
        records.push(performance.now() - recording);
      }
      // A timer's turn (not setImmediate: a chain of immediates kept Bun's 1 ms interval from firing).
      await Bun.sleep(0);
    }
  });
  console.log(`    ${CLAIMS} claims${when ? ` ${when}` : ""} of up to ${SLOTS - layout.full.length * PER_DESTINATION} (${claimed.toLocaleString("en")} rows): ${stats(times)}; longest event-loop gap ${gapMs.toFixed(1)} ms`);
  console.log(`      held the event loop (the call's synchronous part): ${stats(held)}`);
  console.log(`      each claimed row recorded as delivered (not in the claims' times): ${stats(records)}`);
}

/** Rows as ended tasks write them: destination not yet known (NULL), due `due + index` ms. */
function sqliteSeed(path: string, layout: Layout, due: Date): void {
  const db = new Database(path);
  db.run("PRAGMA busy_timeout = 5000");
  const insert = db.query(
    `INSERT INTO webhooks (id, task_id, url, event, payload, next_attempt_at, created_at) VALUES (?1, ?2, ?3, 'task.finished', '{"type":"task.finished"}', ?4, ?4)`,
  );
  db.transaction(() => {
    for (let index = 0; index < ROWS; index++) {
      const at = new Date(due.getTime() + index).toISOString();
      insert.run(`msg_${index}`, `task_${Math.floor(index / 10)}`, layout.url(index), at);
    }
  })();
  db.close();
}

async function runSqlite(): Promise<void> {
  const version = (new Database(":memory:").query("SELECT sqlite_version() AS v").get() as { v: string }).v;
  console.log(`SQLite ${version} (bun:sqlite), a file in ${tmpdir()}`);
  for (const layout of LAYOUTS) {
    const dir = mkdtempSync(join(tmpdir(), "webhook-claim-"));
    try {
      // As the server opens it: WAL checkpoints in a worker thread.
      const store = createSqliteStore({ dataDir: dir });
      const due = new Date(Date.now() - 86_400_000);
      sqliteSeed(join(dir, "agentkit.sqlite"), layout, due);
      console.log(`  ${layout.name}; load ${load()}`);
      await measure(store, layout, due);
      store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

async function runPostgres(): Promise<void> {
  const available = postgresAvailability();
  if (!available.ok) {
    console.log(`PostgreSQL: skipped (${available.reason})`);
    return;
  }
  const pg = await startBenchPostgres(available, (message) => console.log(`  ${message}`));
  try {
    console.log(`PostgreSQL: ${pg.description}`);
    for (const layout of LAYOUTS) {
      const url = await pg.createDatabase();
      const store = await createPostgresStore({ url, max: 4 });
      const due = new Date(Date.now() - 86_400_000);
      const raw = new SQL(url, { max: 1 });
      try {
        const urls = Array.from({ length: ROWS }, (_, index) => layout.url(index));
        await raw`
          INSERT INTO webhooks (id, task_id, url, event, payload, next_attempt_at, created_at)
          SELECT 'msg_' || n, 'task_' || (n / 10), u, 'task.finished', '{"type":"task.finished"}', ${due}::timestamptz + n * interval '1 millisecond', ${due}::timestamptz + n * interval '1 millisecond'
          FROM unnest(${urls}::text[]) WITH ORDINALITY AS given(u, n)`;
        await raw`VACUUM ANALYZE webhooks`;
        console.log(`  ${layout.name}; load ${load()}`);
        // Claims right after the intake (its 100,000 updates not vacuumed yet), then after a VACUUM.
        await measure(store, layout, due, async () => {
          await raw`VACUUM ANALYZE webhooks`;
          await raw`VACUUM ANALYZE webhook_destinations`;
        });
      } finally {
        await raw.close();
        await store.close();
      }
    }
  } finally {
    await pg.stop();
  }
}

console.log(`webhook claims at ${ROWS.toLocaleString("en")} due rows; ${SLOTS} slots, ${PER_DESTINATION} per destination; load average ${load()}`);
if (which === "sqlite" || which === "both") await runSqlite();
if (which === "postgres" || which === "both") await runPostgres();
console.log(`load average at the end ${load()}`);
