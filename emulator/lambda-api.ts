/**
 * The one Lambda API call the broker makes of itself: the fan-out invoking more instances of the
 * fan-out function for the pages of a large fan-out (ADR 0024). Served on the gateway's port, the
 * way the real `LambdaClient` sends it (POST /2015-03-31/functions/{name}/invocations), by a pool of
 * its own so page invocations never wait behind the stream batches that are waiting for them: on
 * AWS both draw on the account's concurrency, far larger than the stream's shards.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FunctionError, FunctionPool } from './function-pool.js';
import type { Meter } from './meter.js';

/** The path the fan-out's `LambdaClient` posts page invocations to (the function is named `fanout` here). */
export const fanoutInvokePath = '/2015-03-31/functions/fanout/invocations';

/**
 * A pool of the fan-out function for page invocations, warmed like the others; `maxInstances`
 * replaces the function's own.
 *
 * @example
 * const pages = await startPagePool(pools.fanout, meter, { warm: 2 });
 */
export async function startPagePool(
  fanout: FunctionPool,
  meter: Meter,
  { warm, maxInstances = fanout.settings.maxInstances }: { warm: number; maxInstances?: number },
): Promise<FunctionPool> {
  const pool = new FunctionPool({ ...fanout.settings, maxInstances }, meter);
  const instances = Math.min(warm, maxInstances);
  pool.warm(instances);
  await Promise.all(Array.from({ length: instances }, () => pool.invoke({ Records: [] })));
  return pool;
}

/**
 * Answers an Invoke (RequestResponse) as Lambda does: 200 with the function's JSON answer, or 200
 * with `X-Amz-Function-Error` and the error when the function failed.
 */
export function lambdaInvokeRoute(
  pool: () => FunctionPool | undefined,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const target = pool();
      if (req.method !== 'POST' || !target) {
        res.writeHead(target ? 405 : 503, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ message: target ? 'Invoke is a POST' : 'the functions are not started yet' }),
        );
        return;
      }
      let event: unknown;
      try {
        event = JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null');
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: 'the payload is not JSON' }));
        return;
      }
      target.invoke(event).then(
        (value) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(value ?? null));
        },
        (error: Error) => {
          const errorType = error instanceof FunctionError ? error.errorType : 'Unhandled';
          res.writeHead(200, { 'content-type': 'application/json', 'x-amz-function-error': 'Unhandled' });
          res.end(JSON.stringify({ errorType, errorMessage: error.message }));
        },
      );
    });
  };
}
