import { channel } from 'node:diagnostics_channel';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

/** One DynamoDB request (one HTTP attempt) and the capacity it consumed: what the bill is made of. */
export interface ConsumedCapacityRecord {
  /** The API operation, e.g. `PutItem`. */
  readonly operation: string;
  readonly readUnits: number;
  readonly writeUnits: number;
}

/**
 * The diagnostics channel the store's DynamoDB client reports each request on. Nothing listens on
 * AWS, and then nothing is asked for or reported; the emulator listens in every function instance
 * to meter the units the bill is priced from (docs/adr/0028-metering-in-the-function.md).
 */
export const consumedCapacityChannel = channel('nimbus:dynamodb:consumed-capacity');

// The data-plane operations that take ReturnConsumedCapacity and are billed in capacity units
// (the store's only PartiQL statement is a SELECT).
const readOperations = new Set([
  'GetItem',
  'BatchGetItem',
  'Query',
  'Scan',
  'TransactGetItems',
  'ExecuteStatement',
]);
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
 * What a strongly consistent read of these items costs: their size in 4 KB units, rounded up.
 * DynamoDB Local reports no consumed capacity for PartiQL; this stands in for it. It counts the
 * items of a multi-partition SELECT as one read, where separate Queries would round up per partition.
 */
function strongReadUnits(items: readonly unknown[]): number {
  const attributes = (item: unknown) =>
    Object.entries(item ?? {}).reduce<number>(
      (sum, [name, v]) => sum + Buffer.byteLength(name) + valueBytes(v),
      0,
    );
  const bytes = items.reduce<number>((sum, item) => sum + attributes(item), 0);
  return Math.ceil(bytes / 4096);
}

/** DynamoDB's size of a value (as the document client returns it): names and values, in bytes. */
function valueBytes(value: unknown): number {
  if (typeof value === 'string') return Buffer.byteLength(value);
  if (typeof value === 'number' || typeof value === 'bigint') return Math.ceil(String(value).length / 2) + 1;
  if (typeof value === 'boolean' || value === null || value === undefined) return 1;
  if (value instanceof Uint8Array) return value.byteLength;
  if (value instanceof Set) return [...value].reduce<number>((sum, v) => sum + valueBytes(v), 0);
  if (Array.isArray(value)) return 3 + value.reduce<number>((sum, v) => sum + 1 + valueBytes(v), 0);
  if (typeof value === 'object')
    return (
      3 +
      Object.entries(value).reduce<number>(
        (sum, [name, v]) => sum + 1 + Buffer.byteLength(name) + valueBytes(v),
        0,
      )
    );
  return 0;
}

/**
 * Makes `client` report every data-plane request on {@link consumedCapacityChannel} while someone
 * listens: it asks DynamoDB for the TOTAL consumed capacity and publishes it once per HTTP attempt
 * (a retried request is billed again); an attempt that failed is a request of no units.
 *
 * @example
 * const client = reportConsumedCapacity(new DynamoDBClient({}));
 * subscribe(consumedCapacityChannel.name, (record) => meter.add(record));
 */
export function reportConsumedCapacity(client: DynamoDBClient): DynamoDBClient {
  const operationOf = (commandName: unknown) => String(commandName ?? '').replace(/Command$/, '');
  const metered = (operation: string) => readOperations.has(operation) || writeOperations.has(operation);
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (!consumedCapacityChannel.hasSubscribers || !metered(operationOf(context.commandName)))
        return next(args);
      return next({ ...args, input: { ...(args.input as object), ReturnConsumedCapacity: 'TOTAL' } });
    },
    { step: 'initialize', name: 'nimbusAskConsumedCapacity' },
  );
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const operation = operationOf(context.commandName);
      if (!consumedCapacityChannel.hasSubscribers || !metered(operation)) return next(args);
      const isRead = readOperations.has(operation);
      const publish = (consumed: number) =>
        consumedCapacityChannel.publish({
          operation,
          readUnits: isRead ? consumed : 0,
          writeUnits: isRead ? 0 : consumed,
        } satisfies ConsumedCapacityRecord);
      try {
        const result = await next(args);
        const output = result.output as { ConsumedCapacity?: Capacity | Capacity[]; Items?: unknown[] };
        publish(
          output.ConsumedCapacity === undefined && operation === 'ExecuteStatement'
            ? strongReadUnits(output.Items ?? [])
            : units(output.ConsumedCapacity),
        );
        return result;
      } catch (error) {
        // An error reply carries no capacity; it is still a request.
        publish(0);
        throw error;
      }
    },
    // In the deserialize step, inside the retry loop: each attempt, as the service sees it.
    { step: 'deserialize', name: 'nimbusReportConsumedCapacity', priority: 'high' },
  );
  return client;
}
