import { Worker } from 'node:worker_threads';
import type { WorkerInit, WorkerReply } from './lambda-worker.js';
import type { Meter } from './meter.js';

export interface FunctionSettings {
  /** Name used in logs and the meter, e.g. 'message'. */
  readonly name: string;
  /** File URL of the function's module. */
  readonly entry: string;
  readonly exportName?: string;
  readonly environment: Readonly<Record<string, string>>;
  /** Most instances at once (Lambda's concurrency); invocations beyond wait. */
  readonly maxInstances: number;
  /** Billed memory, for GB-seconds. */
  readonly memoryMb: number;
  /** Lambda's timeout: an invocation still running after it is abandoned and its instance replaced. */
  readonly timeoutMs: number;
  /** Adds a random 0..jitterMs delay to each invocation, so ordering bugs surface locally. */
  readonly jitterMs?: number;
}

export class FunctionError extends Error {
  constructor(
    readonly functionName: string,
    readonly errorType: string,
    message: string,
  ) {
    super(`${functionName}: ${errorType}: ${message}`);
    this.name = 'FunctionError';
  }
}

interface Instance {
  readonly id: number;
  readonly worker: Worker;
  busy: boolean;
  lastUsed: number;
  current?: {
    resolve: (value: unknown) => void;
    reject: (error: Error) => void;
    /** Called when the handler starts, after any cold start. */
    started: () => void;
  };
}

const workerUrl = new URL('./lambda-worker-loader.mjs', import.meta.url);

/**
 * The instances of one emulated Lambda function. Each instance is a worker
 * thread with its own module state, runs one invocation at a time, and a new
 * one starts (cold) when all are busy, up to `maxInstances`. An idle
 * instance is picked least-recently-used first, so consecutive invocations
 * land on different instances whenever several are warm: a module-level
 * cache that would break across Lambda instances breaks here too.
 *
 * @example
 * const pool = new FunctionPool({ name: 'message', entry, environment, maxInstances: 4, memoryMb: 256, timeoutMs: 15_000 }, meter);
 * const response = await pool.invoke(event);
 */
export class FunctionPool {
  private readonly instances: Instance[] = [];
  private readonly waiting: Array<() => void> = [];
  private nextInstanceId = 1;
  private nextRequestId = 1;
  private stopped = false;

  constructor(
    readonly settings: FunctionSettings,
    private readonly meter: Meter,
  ) {}

  /** Starts instances ahead of the first invocation, as provisioned concurrency would. */
  warm(count: number): void {
    while (this.instances.length < Math.min(count, this.settings.maxInstances)) this.spawn();
  }

  /** Instance ids that have served invocations, for tests that need to see work spread. */
  get instanceIds(): number[] {
    return this.instances.map((i) => i.id);
  }

  async invoke(event: unknown): Promise<unknown> {
    if (this.stopped) throw new FunctionError(this.settings.name, 'Stopped', 'the emulator is stopping');
    const jitter = this.settings.jitterMs ?? 0;
    if (jitter > 0) await new Promise((r) => setTimeout(r, Math.random() * jitter));
    const instance = await this.acquire();
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<unknown>((resolve, reject) => {
        const started = () => {
          timer = setTimeout(() => this.timeOut(instance), this.settings.timeoutMs);
        };
        instance.current = { resolve, reject, started };
        instance.worker.ref(); // an invocation in flight keeps the process alive; an idle instance does not
        instance.worker.postMessage({ id: this.nextRequestId++, event });
      });
    } finally {
      clearTimeout(timer);
      this.meter.lambdaInvocation(
        this.settings.name,
        performance.now() - started,
        this.settings.memoryMb,
        instance.id,
      );
      instance.current = undefined;
      instance.worker.unref();
      instance.busy = false;
      instance.lastUsed = performance.now();
      this.waiting.shift()?.();
    }
  }

  /**
   * As Lambda does at the timeout: the invocation fails (its caller retries the event) and the
   * instance is stopped where it is and replaced, so none of its unfinished work carries on.
   */
  private timeOut(instance: Instance): void {
    const index = this.instances.indexOf(instance);
    if (index >= 0) this.instances.splice(index, 1); // never handed another invocation
    const seconds = this.settings.timeoutMs / 1000;
    instance.current?.reject(
      new FunctionError(this.settings.name, 'Sandbox.Timedout', `Task timed out after ${seconds} seconds`),
    );
    void instance.worker.terminate();
  }

  /** Ends an instance as if its runtime crashed: its invocation in flight fails. */
  async crashInstance(predicate: (busy: boolean) => boolean = (busy) => busy): Promise<boolean> {
    const victim = this.instances.find((i) => predicate(i.busy));
    if (!victim) return false;
    await victim.worker.terminate();
    return true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.instances.map((i) => i.worker.terminate()));
  }

  private async acquire(): Promise<Instance> {
    for (;;) {
      const idle = this.instances.filter((i) => !i.busy).sort((a, b) => a.lastUsed - b.lastUsed)[0];
      const instance =
        idle ?? (this.instances.length < this.settings.maxInstances ? this.spawn() : undefined);
      if (instance) {
        instance.busy = true;
        return instance;
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  private spawn(): Instance {
    const init: WorkerInit = {
      entry: this.settings.entry,
      exportName: this.settings.exportName ?? 'handler',
    };
    const worker = new Worker(workerUrl, {
      workerData: init,
      env: { ...process.env, ...this.settings.environment },
    });
    const instance: Instance = { id: this.nextInstanceId++, worker, busy: false, lastUsed: 0 };
    worker.on('message', (reply: WorkerReply) => {
      if ('capacity' in reply) {
        const { operation, readUnits, writeUnits } = reply.capacity;
        this.meter.dynamoRequest(operation, readUnits, writeUnits);
      } else if ('started' in reply) instance.current?.started();
      else if (reply.ok) instance.current?.resolve(reply.value);
      else {
        instance.current?.reject(
          new FunctionError(this.settings.name, reply.error.name, reply.error.message),
        );
      }
    });
    const retire = (why: string) => {
      const index = this.instances.indexOf(instance);
      if (index >= 0) this.instances.splice(index, 1);
      instance.current?.reject(new FunctionError(this.settings.name, 'Runtime.ExitError', why));
      this.waiting.shift()?.();
    };
    worker.on('error', (error) => retire(`instance crashed: ${error.message}`));
    worker.on('exit', (code) => retire(`instance exited with code ${code}`));
    worker.unref();
    this.instances.push(instance);
    return instance;
  }
}
