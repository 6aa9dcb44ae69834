import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  type DynamoDBDocumentClient,
  type NativeAttributeValue,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
} from '@aws-sdk/lib-dynamodb';

/** An item as the document client returns it. */
export type Item = Record<string, NativeAttributeValue>;

function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/**
 * A query's items page by page, following LastEvaluatedKey.
 *
 * @example
 * for await (const items of queryPages(db, { TableName, KeyConditionExpression: 'clientId = :c', ... })) { ... }
 */
export async function* queryPages(
  db: DynamoDBDocumentClient,
  input: QueryCommandInput,
): AsyncIterable<Item[]> {
  let startKey: Item | undefined;
  do {
    const page = await db.send(new QueryCommand({ ...input, ExclusiveStartKey: startKey }));
    yield page.Items ?? [];
    startKey = page.LastEvaluatedKey;
  } while (startKey);
}

/** Every item a query finds, all pages read. */
export async function queryAll(db: DynamoDBDocumentClient, input: QueryCommandInput): Promise<Item[]> {
  const items: Item[] = [];
  for await (const page of queryPages(db, input)) items.push(...page);
  return items;
}

/** A table's items page by page (one page, possibly empty, for an empty table). */
export async function* scanPages(db: DynamoDBDocumentClient, tableName: string): AsyncIterable<Item[]> {
  let startKey: Item | undefined;
  do {
    const page = await db.send(new ScanCommand({ TableName: tableName, ExclusiveStartKey: startKey }));
    yield page.Items ?? [];
    startKey = page.LastEvaluatedKey;
  } while (startKey);
}

/** Every item of a table. */
export async function scanAll(db: DynamoDBDocumentClient, tableName: string): Promise<Item[]> {
  const items: Item[] = [];
  for await (const page of scanPages(db, tableName)) items.push(...page);
  return items;
}

/** BatchGetItem calls of one read in flight at once: a large fan-out page reads its sessions side by side. */
const batchGetsInFlight = 8;

/**
 * Reads items by key, in batches of 100 (BatchGetItem's limit), up to eight batches at once,
 * retrying unprocessed keys. Consistent reads; keys must be distinct.
 */
export async function batchGet(
  db: DynamoDBDocumentClient,
  tableName: string,
  keys: readonly Item[],
): Promise<Item[]> {
  const groups = chunk(keys, 100);
  const read: Item[][] = [];
  let next = 0;
  const lane = async () => {
    for (let index = next++; index < groups.length; index = next++) {
      const items: Item[] = [];
      let pending: Item[] | undefined = groups[index];
      while (pending && pending.length > 0) {
        const result: BatchGetCommandOutput = await db.send(
          new BatchGetCommand({ RequestItems: { [tableName]: { Keys: pending, ConsistentRead: true } } }),
        );
        items.push(...(result.Responses?.[tableName] ?? []));
        pending = result.UnprocessedKeys?.[tableName]?.Keys;
      }
      read[index] = items;
    }
  };
  await Promise.all(Array.from({ length: Math.min(batchGetsInFlight, groups.length) }, lane));
  return read.flat();
}

/** Writes put/delete requests in batches of 25 (BatchWriteItem's limit), retrying unprocessed ones. */
export async function batchWrite(
  db: DynamoDBDocumentClient,
  tableName: string,
  requests: readonly Item[],
): Promise<void> {
  for (const group of chunk(requests, 25)) {
    let pending: Item[] | undefined = group;
    while (pending && pending.length > 0) {
      const result: BatchWriteCommandOutput = await db.send(
        new BatchWriteCommand({ RequestItems: { [tableName]: pending } }),
      );
      pending = result.UnprocessedItems?.[tableName];
    }
  }
}
