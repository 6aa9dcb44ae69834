import type { Database } from './database.js';
import { queryAll } from './paging.js';

/** A key's shard of a sharded index: FNV-1a of the key. */
export function shardOf(key: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash = Math.imul(hash ^ key.charCodeAt(i), 0x01000193);
  }
  return (hash >>> 0) % shards;
}

/** The client ids a sparse, sharded index of the Sessions table lists as due by `now`: one query per shard. */
export async function dueSessionIds(
  database: Database,
  index: string,
  shardAttribute: string,
  dueAttribute: string,
  shards: number,
  now: number,
): Promise<string[]> {
  const { db, tables } = database;
  const pages = Array.from({ length: shards }, (_, shard) =>
    queryAll(db, {
      TableName: tables.Sessions,
      IndexName: index,
      KeyConditionExpression: `${shardAttribute} = :shard AND ${dueAttribute} <= :now`,
      ExpressionAttributeValues: { ':shard': String(shard), ':now': now },
    }),
  );
  return (await Promise.all(pages)).flat().map((item) => String(item.clientId));
}
