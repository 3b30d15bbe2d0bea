/**
 * The ceiling: a bare `Bun.serve` pub/sub server, the least a server must do to stream a task's
 * frames — build each frame, `JSON.stringify` it once, `server.publish` it to one topic — with no
 * engine, no store, no runner. Same WebSocket settings as agentkit (src/server/websocket.ts): no
 * compression, no idle timeout, no pings, `connected` frame first.
 *
 *   bun bench/bare-pubsub.ts --port N
 *   GET  /health
 *   GET  /ws[?after=N]                    `connected`, then (with after=N) the frames of the
 *                                         current publish with seq > N from memory, then subscribe
 *   POST /publish?steps=M&pad=P&delay_ms=D
 *   POST /end                             a paced publish ends now (its last usage + result)
 *
 * Pacing, chosen to match agentkit with `demo/bench` on this build: with delay_ms=0 every frame is
 * built and published in one synchronous loop (agentkit's instant task also never yields to the
 * event loop: every await on its path is on an already-settled promise); the response reports how
 * long the loop took. With delay_ms=D each step's three frames are published after a D ms timer,
 * like the bench model's per-step sleep; the response returns at once.
 */
import { parseArgs } from "node:util";
import { connectedFrame, endFrames, stepFrames } from "./lib/frames.ts";
import { exitWithParent } from "./lib/orphan.ts";

const TOPIC = "task:bench";
const TASK_ID = "00000000-0000-4000-8000-000000000000";

const { values } = parseArgs({ options: { port: { type: "string" } } });
exitWithParent();

let lastSeq = 0;
/** The frames of the current publish (index = seq − 1), for a watcher that resumes with `after=`. */
let log: string[] = [];
/** The paced publish in progress, if any. */
let paced: { timer: ReturnType<typeof setTimeout> | undefined; step: number } | undefined;

function publishStep(server: Bun.Server<number>, step: number, pad: string) {
  const t = performance.timeOrigin + performance.now();
  for (const frame of stepFrames(lastSeq + 1, step, t, pad)) {
    log.push(frame);
    server.publish(TOPIC, frame, false);
  }
  lastSeq += 3;
}

function publishEnd(server: Bun.Server<number>, steps: number) {
  for (const frame of endFrames(lastSeq + 1, steps, TASK_ID)) {
    log.push(frame);
    server.publish(TOPIC, frame, false);
  }
  lastSeq += 2;
}

const server = Bun.serve<number>({
  hostname: "127.0.0.1",
  port: Number(values.port ?? 0),
  fetch(request, bunServer) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/health":
        return Response.json({ status: "ok", subscribers: bunServer.subscriberCount(TOPIC) });
      case "/ws": {
        const after = url.searchParams.get("after");
        return bunServer.upgrade(request, { data: after === null ? -1 : Number(after) })
          ? undefined
          : new Response("upgrade failed", { status: 400 });
      }
      case "/end": {
        if (paced) {
          clearTimeout(paced.timer);
          publishEnd(bunServer, paced.step);
          paced = undefined;
        }
        return Response.json({ last_seq: lastSeq });
      }
      case "/publish": {
        const steps = Number(url.searchParams.get("steps") ?? 0);
        const pad = "x".repeat(Number(url.searchParams.get("pad") ?? 0));
        const delayMs = Number(url.searchParams.get("delay_ms") ?? 0);
        lastSeq = 0;
        log = [];
        if (paced) clearTimeout(paced.timer);
        paced = undefined;
        if (delayMs === 0) {
          const started = performance.now();
          for (let step = 1; step <= steps; step++) publishStep(bunServer, step, pad);
          publishEnd(bunServer, steps);
          return Response.json({ publish_ms: performance.now() - started });
        }
        const run = { timer: undefined as ReturnType<typeof setTimeout> | undefined, step: 0 };
        paced = run;
        const tick = () => {
          if (++run.step <= steps) {
            publishStep(bunServer, run.step, pad);
            run.timer = setTimeout(tick, delayMs);
          } else {
            publishEnd(bunServer, steps);
            if (paced === run) paced = undefined;
          }
        };
        run.timer = setTimeout(tick, delayMs);
        return Response.json({ started: true });
      }
      default:
        return new Response("not found", { status: 404 });
    }
  },
  websocket: {
    perMessageDeflate: false,
    idleTimeout: 0,
    sendPings: false,
    backpressureLimit: 8 * 1024 * 1024 * 1024,
    closeOnBackpressureLimit: true,
    open(ws) {
      ws.send(connectedFrame(TASK_ID, paced ? "running" : "queued", lastSeq));
      // Resuming (after=N): what a server must do at the least — the missed frames from memory, then live.
      const after = ws.data as number;
      if (after >= 0) for (let seq = after + 1; seq <= lastSeq; seq++) ws.send(log[seq - 1]!);
      ws.subscribe(TOPIC);
    },
    message() {},
  },
});

process.stdout.write(`listening ${server.port}\n`);
