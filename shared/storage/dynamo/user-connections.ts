import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { BrokerStore } from '../../ports.js';
import { ifConditionHolds } from './conditions.js';
import type { Database } from './database.js';

type UserConnectionOps = Pick<BrokerStore, 'addUserConnection' | 'removeUserConnection' | 'userConnections'>;

/** The LoginAttempts item of a user's live connections; the prefix keeps it apart from the throttle's `user#…`. */
const userKey = (user: string) => `connections#${user}`;

/**
 * Each authenticated user's live connection ids, as a string set on one item of the
 * LoginAttempts table (docs/adr/0016-publish-and-connection-quotas.md): adding and removing
 * an id are idempotent, so a retried CONNECT or two instances noticing one end count once.
 *
 * @example
 * await new UserConnections(database).addUserConnection('alice', 'conn-1', 100);
 */
export class UserConnections implements UserConnectionOps {
  constructor(private readonly database: Database) {}

  async addUserConnection(
    user: string,
    connectionId: string,
    max: number,
    replacing?: string,
  ): Promise<boolean> {
    const { db, tables } = this.database;
    return ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.LoginAttempts,
          Key: { key: userKey(user) },
          UpdateExpression: 'ADD conns :ids',
          ConditionExpression: `attribute_not_exists(conns) OR size(conns) < :max OR contains(conns, :self)${
            replacing === undefined ? '' : ' OR contains(conns, :replacing)'
          }`,
          ExpressionAttributeValues: {
            ':ids': new Set([connectionId]),
            ':max': max,
            ':self': connectionId,
            ...(replacing === undefined ? {} : { ':replacing': replacing }),
          },
        }),
      ),
    );
  }

  async removeUserConnection(user: string, connectionId: string): Promise<void> {
    const { db, tables } = this.database;
    await db.send(
      new UpdateCommand({
        TableName: tables.LoginAttempts,
        Key: { key: userKey(user) },
        UpdateExpression: 'DELETE conns :ids',
        ExpressionAttributeValues: { ':ids': new Set([connectionId]) },
      }),
    );
  }

  async userConnections(user: string): Promise<string[]> {
    const { db, tables } = this.database;
    const { Item } = await db.send(
      new GetCommand({ TableName: tables.LoginAttempts, Key: { key: userKey(user) }, ConsistentRead: true }),
    );
    return [...((Item?.conns as Set<string> | undefined) ?? [])];
  }
}
