/**
 * Many tasks: K tasks created at once (POST /tasks, `postConcurrency` in flight), each watched by a
 * few watchers, the instant model, M steps each. End to end: from the first POST to the `result`
 * frame at the last watcher. Persistence is checked afterwards: every task `completed` with
 * `last_seq` = 3M+2 (GET /tasks/:id), and every watcher got exactly that many frames.
 */
import { framesOfTask } from "../lib/frames.ts";
import { getTask, round, startServer, warmUp, type Context } from "../lib/context.ts";
import { ClientProcess, cpuSecondsOf } from "../lib/processes.ts";

export interface ManyTasksResult {
  /** The model's sleep before each step (0: instant, a step's events in one burst). */
  step_delay_ms: number;
  tasks: number;
  watchers_per_task: number;
  steps_per_task: number;
  events_per_task: number;
  window_s: number;
  tasks_per_s: number;
  /** Durable events (`step` + `result` frames, i.e. last_seq) persisted per second, end to end. */
  persisted_events_per_s: number;
  /** ReAct steps (model call + tool call + result) per second. */
  react_steps_per_s: number;
  /** The same, from the server's own timestamps: first started_at → last finished_at. */
  server_window_s: number;
  server_persisted_events_per_s: number;
  tasks_verified: number;
  all_persisted: boolean;
  all_frames_delivered: boolean;
  server_cpu_percent: number;
  post_failures: number;
  closed_early: number;
}

/**
 * `delayMs` > 0 paces the model like a real one: it sleeps before each step, so a step's events
 * arrive over several event-loop turns and each task's appends cannot share a transaction with its
 * next step's (200 tasks sleeping 1 ms each still keep the server saturated).
 */
export async function manyTasks(context: Context, delayMs = 0, env: Record<string, string> = {}, label = ""): Promise<ManyTasksResult> {
  const tasks = context.options.quick ? 50 : 200;
  const watchersPerTask = 3;
  const steps = 100;
  const expected = framesOfTask(steps);
  context.log(
    `many tasks${label ? ` on ${label}` : ""}${delayMs ? ` (paced: ${delayMs} ms model sleep per step)` : " (instant model)"}: ${tasks} tasks × ${steps} steps ` +
      `(${expected} events each), ${watchersPerTask} watchers each`,
  );
  const server = await startServer(context, { AGENTKIT_MAX_CONCURRENT_TASKS: String(Math.max(16, tasks)), ...env });
  try {
    await warmUp(server);
    const client = new ClientProcess(context.benchDir, {
      mode: "tasks",
      http: server.http,
      ws: server.ws,
      tasks,
      watchersPerTask,
      agent: "bench",
      input: JSON.stringify(delayMs ? { steps, pad: context.options.pad, delay_ms: delayMs } : { steps, pad: context.options.pad }),
      postConcurrency: 64,
      timeoutMs: 120_000,
    });
    try {
      await client.next("ready", 30_000);
      const cpuBefore = cpuSecondsOf(server.pid);
      client.send({ type: "go" });
      const done = await client.next("tasks-done", 180_000);
      const cpu = cpuSecondsOf(server.pid) - cpuBefore;
      const window = (done.last_arrival - done.started_at) / 1000;
      const stored = await Promise.all(done.task_ids.map((id) => getTask(server, id)));
      const persisted = stored.reduce((sum, task) => sum + task.last_seq, 0);
      const verified = stored.filter((task) => task.status === "completed" && task.last_seq === expected).length;
      const started = Math.min(...stored.map((task) => Date.parse(task.started_at ?? "")));
      const finished = Math.max(...stored.map((task) => Date.parse(task.finished_at ?? "")));
      const serverWindow = (finished - started) / 1000;
      const result: ManyTasksResult = {
        step_delay_ms: delayMs,
        tasks,
        watchers_per_task: watchersPerTask,
        steps_per_task: steps,
        events_per_task: expected,
        window_s: round(window, 3),
        tasks_per_s: Math.round(tasks / window),
        persisted_events_per_s: Math.round(persisted / window),
        react_steps_per_s: Math.round((tasks * (steps + 1)) / window),
        server_window_s: round(serverWindow, 3),
        server_persisted_events_per_s: Math.round(persisted / serverWindow),
        tasks_verified: verified,
        all_persisted: verified === tasks,
        all_frames_delivered:
          done.per_watcher_min === expected && done.per_watcher_max === expected && !done.timed_out && done.closed_early === 0,
        server_cpu_percent: round((cpu / window) * 100, 1),
        post_failures: done.post_failures,
        closed_early: done.closed_early,
      };
      context.log(
        `  ${result.tasks_per_s} tasks/s, ${result.persisted_events_per_s} persisted events/s end to end ` +
          `(${result.server_persisted_events_per_s}/s by server timestamps), ${verified}/${tasks} verified`,
      );
      return result;
    } finally {
      await client.close();
    }
  } finally {
    await server.stop();
  }
}
