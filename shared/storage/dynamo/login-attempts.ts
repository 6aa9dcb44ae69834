import { DeleteCommand, type DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { AttemptState, LoginAttemptStore } from '../../login-throttle.js';
import { ifConditionHolds } from './conditions.js';
import { epochSeconds } from './database.js';

/**
 * Failed-login counters in the LoginAttempts table, written compare-and-set on the failure count
 * so instances counting the same key at once do not lose a failure.
 *
 * @example
 * const throttle = new StoredLoginThrottle(new DynamoLoginAttempts(db, config.tables.LoginAttempts), Date.now);
 */
export class DynamoLoginAttempts implements LoginAttemptStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly now: () => number = Date.now,
  ) {}

  async get(key: string): Promise<AttemptState | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tableName, Key: { key }, ConsistentRead: true }),
    );
    // TTL deletes late (up to days): an expired row counts as none.
    if (!Item || (Item.expiresAt as number) * 1000 <= this.now()) return undefined;
    return {
      failures: Item.failures as number,
      windowStart: Item.windowStart as number,
      blockedUntil: Item.blockedUntil as number,
    };
  }

  async replace(
    key: string,
    next: AttemptState,
    previous: AttemptState | undefined,
    expiresAt: number,
  ): Promise<boolean> {
    return ifConditionHolds(
      this.db.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { key, ...next, expiresAt: epochSeconds(expiresAt) + 1 },
          ...(previous
            ? {
                ConditionExpression: 'failures = :f AND windowStart = :w',
                ExpressionAttributeValues: { ':f': previous.failures, ':w': previous.windowStart },
              }
            : {
                // Nothing, or only a row whose TTL has passed.
                ConditionExpression: 'attribute_not_exists(#k) OR expiresAt <= :now',
                ExpressionAttributeNames: { '#k': 'key' },
                ExpressionAttributeValues: { ':now': epochSeconds(this.now()) },
              }),
        }),
      ),
    );
  }

  async delete(key: string): Promise<void> {
    await this.db.send(new DeleteCommand({ TableName: this.tableName, Key: { key } }));
  }
}
