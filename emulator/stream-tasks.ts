/**
 * The background tasks of a stream poller and the waits between them, all cut short by one `stop()`:
 * a stopped poller must not leave a timer or a request behind.
 *
 * @example
 * const tasks = new StreamTasks('stream poller');
 * tasks.spawn((async () => { while (!tasks.stopping) await tasks.sleep(250); })());
 * await tasks.stop();
 */
export class StreamTasks {
  private readonly running = new Set<Promise<void>>();
  private readonly sleepers = new Set<() => void>();
  private readonly abort = new AbortController();
  private readonly waiters = new Set<() => void>();
  private stopped = false;

  /** `label` prefixes the diagnostics of tasks that fail. */
  constructor(private readonly label: string) {}

  get stopping(): boolean {
    return this.stopped;
  }

  /** Aborts requests in flight when `stop()` is called. */
  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** Runs `task` in the background; `stop()` waits for it. */
  spawn(task: Promise<void>): void {
    const tracked = task.catch((error: unknown) => {
      if (!this.stopped) console.error(`${this.label}: task failed`, error);
    });
    this.running.add(tracked);
    void tracked.finally(() => this.running.delete(tracked));
  }

  /** Waits up to `ms`; `stop()` cuts every wait short. */
  sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /**
   * Resolves at the next `notify()` (a record read or settled, a shard read to its end), at `stop()`,
   * or after `timeoutMs` when given.
   */
  changed(timeoutMs?: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.waiters.delete(wake);
        resolve();
      };
      const timer = timeoutMs === undefined ? undefined : setTimeout(wake, timeoutMs);
      this.waiters.add(wake);
    });
  }

  /** Wakes everything waiting in `changed()`. */
  notify(): void {
    for (const wake of [...this.waiters]) wake();
  }

  /** Cuts every wait short, aborts requests, and resolves once every spawned task has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort();
    for (const wake of this.sleepers) wake();
    this.notify();
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}
