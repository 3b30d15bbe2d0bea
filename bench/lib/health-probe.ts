/**
 * A `GET /health` probe in a process of its own (this file, run with `--probe <url>`): it asks every
 * 2 ms and prints one line per answer, `<epoch ms when asked> <ms it took>`, until its stdin closes;
 * a refused connection (the server not listening yet) is no answer. How long the server's event loop
 * is held shows as how long an answer took — measured outside the server, so a stall is not hidden
 * by the stalled process measuring itself.
 */

export interface HealthProbe {
  /** The answers so far: when each was asked (epoch ms) and how long it took. */
  readonly answers: { at: number; ms: number }[];
  /** The answers asked within, or answered within, `from`–`to` (epoch ms). */
  within(from: number, to: number): { at: number; ms: number }[];
  /** Stops the probe and reads its last answers. */
  stop(): Promise<void>;
}

export function startHealthProbe(url: string): HealthProbe {
  const probe = Bun.spawn(["bun", import.meta.path, "--probe", url], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const answers: { at: number; ms: number }[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let rest = "";
    for await (const chunk of probe.stdout) {
      rest += decoder.decode(chunk, { stream: true });
      const lines = rest.split("\n");
      rest = lines.pop()!;
      for (const line of lines) {
        const [at, ms] = line.split(" ").map(Number);
        answers.push({ at: at!, ms: ms! });
      }
    }
  })();
  return {
    answers,
    within: (from, to) => answers.filter((answer) => answer.at + answer.ms >= from && answer.at <= to),
    async stop() {
      probe.stdin.end();
      await probe.exited;
      await reading;
    },
  };
}

if (import.meta.main && process.argv[2] === "--probe") {
  const url = process.argv[3]!;
  let running = true;
  void (async () => {
    for await (const _ of Bun.stdin.stream()) {
      // Nothing is sent: stdin closing ends the probe.
    }
    running = false;
  })();
  while (running) {
    const at = performance.timeOrigin + performance.now();
    const started = performance.now();
    try {
      const response = await fetch(url);
      await response.arrayBuffer();
      if (response.status === 200) process.stdout.write(`${at.toFixed(1)} ${(performance.now() - started).toFixed(2)}\n`);
    } catch {
      // not listening yet
    }
    await Bun.sleep(2);
  }
  process.exit(0);
}
