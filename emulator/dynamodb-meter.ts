import { createServer, request, type Server } from 'node:http';
import type { Meter } from './meter.js';

const readOperations = new Set(['GetItem', 'BatchGetItem', 'Query', 'Scan', 'TransactGetItems']);
const writeOperations = new Set([
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'BatchWriteItem',
  'TransactWriteItems',
]);

interface Capacity {
  CapacityUnits?: number;
  ReadCapacityUnits?: number;
  WriteCapacityUnits?: number;
}

function units(consumed: Capacity | Capacity[] | undefined): number {
  const list = Array.isArray(consumed) ? consumed : consumed ? [consumed] : [];
  return list.reduce(
    (sum, c) => sum + (c.CapacityUnits ?? (c.ReadCapacityUnits ?? 0) + (c.WriteCapacityUnits ?? 0)),
    0,
  );
}

/**
 * A metering proxy in front of DynamoDB Local: the functions' SDK clients
 * talk to it, it asks DynamoDB for the consumed capacity of every data-plane
 * request and counts requests and read/write units, the figures the
 * DynamoDB bill is made of. Requests pass through otherwise unchanged.
 *
 * @example
 * const proxy = await startDynamoMeter(ddb.endpoint, meter);
 * // functions get proxy.endpoint as their DynamoDB endpoint
 */
export async function startDynamoMeter(
  target: string,
  meter: Meter,
): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const upstream = new URL(target);
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const operation = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
      const metered = readOperations.has(operation) || writeOperations.has(operation);
      let body = Buffer.concat(chunks);
      if (metered) {
        const input = JSON.parse(body.toString()) as Record<string, unknown>;
        input.ReturnConsumedCapacity = 'TOTAL';
        body = Buffer.from(JSON.stringify(input));
      }
      const headers = { ...req.headers, 'content-length': String(body.length) };
      const forward = request(
        { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers },
        (answer) => {
          const replyChunks: Buffer[] = [];
          answer.on('data', (chunk: Buffer) => replyChunks.push(chunk));
          answer.on('end', () => {
            const reply = Buffer.concat(replyChunks);
            if (metered) {
              let consumed = 0;
              try {
                consumed = units(
                  (JSON.parse(reply.toString()) as { ConsumedCapacity?: Capacity }).ConsumedCapacity,
                );
              } catch {
                // An error reply carries no capacity; it is still a request.
              }
              const isRead = readOperations.has(operation);
              meter.dynamoRequest(operation, isRead ? consumed : 0, isRead ? 0 : consumed);
            }
            res.writeHead(answer.statusCode ?? 500, answer.headers);
            res.end(reply);
          });
        },
      );
      forward.on('error', (error) => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: `DynamoDB Local unreachable: ${error.message}` }));
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
