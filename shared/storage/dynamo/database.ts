import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { TableId } from '../../tables.js';

/** What each of DynamoStore's table modules works with: the client, the table names and the clock. */
export interface Database {
  readonly db: DynamoDBDocumentClient;
  readonly tables: Readonly<Record<TableId, string>>;
  /** The context's clock, for times the store stamps itself (expiries, a subscription's time). */
  readonly now: () => number;
}

/**
 * DynamoDB's TTL attribute holds epoch seconds.
 *
 * @example
 * epochSeconds(1_700_000_000_999); // 1_700_000_000
 */
export const epochSeconds = (ms: number) => Math.floor(ms / 1000);
