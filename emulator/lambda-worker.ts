/**
 * One emulated Lambda instance: a worker thread that loads a function's
 * module once (so module-level state lives as long as the instance, as in
 * AWS) and runs one invocation at a time.
 */
import { subscribe } from 'node:diagnostics_channel';
import { parentPort, workerData } from 'node:worker_threads';
import {
  type ConsumedCapacityRecord,
  consumedCapacityChannel,
} from '../shared/storage/dynamo/consumed-capacity.js';

export interface WorkerInit {
  readonly entry: string;
  readonly exportName: string;
}

export type WorkerRequest = { readonly id: number; readonly event: unknown };
export type WorkerReply =
  /** The module is loaded and the handler starts: Lambda's timeout counts from here, not from the cold start. */
  | { readonly id: number; readonly started: true }
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  /** A DynamoDB request the instance made, for the meter (shared/storage/dynamo/consumed-capacity.ts). */
  | { readonly capacity: ConsumedCapacityRecord }
  | {
      readonly id: number;
      readonly ok: false;
      readonly error: { name: string; message: string; stack?: string };
    };

type Handler = (event: unknown, context: unknown) => Promise<unknown>;

const init = workerData as WorkerInit;
const port = parentPort;
if (!port) throw new Error('lambda-worker runs only as a worker thread');

// The instance's DynamoDB requests go to the meter as they complete, whichever invocation made them.
subscribe(consumedCapacityChannel.name, (record) => {
  port.postMessage({ capacity: record as ConsumedCapacityRecord } satisfies WorkerReply);
});

let loaded: Promise<Handler> | undefined;
function handler(): Promise<Handler> {
  // Loading on first use, like a Lambda cold start; a module that throws at load fails every invocation.
  loaded ??= import(init.entry).then((module: Record<string, unknown>) => {
    const fn = module[init.exportName];
    if (typeof fn !== 'function')
      throw new Error(`${init.entry} does not export a function "${init.exportName}"`);
    return fn as Handler;
  });
  return loaded;
}

port.on('message', async ({ id, event }: WorkerRequest) => {
  try {
    const fn = await handler();
    port.postMessage({ id, started: true } satisfies WorkerReply);
    const value = await fn(event, { awsRequestId: String(id) });
    port.postMessage({ id, ok: true, value } satisfies WorkerReply);
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    port.postMessage({
      id,
      ok: false,
      error: { name: e.name, message: e.message, stack: e.stack },
    } satisfies WorkerReply);
  }
});
