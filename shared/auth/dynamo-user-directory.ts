/**
 * The users table in DynamoDB (`usersTable` in shared/tables.ts): one item per user,
 * `{ username, passwordHash, updatedAt }`. Read by the broker, written by `nimbus users`.
 */
import {
  DeleteCommand,
  type DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  paginateScan,
} from '@aws-sdk/lib-dynamodb';
import type { UserDirectory, UserEntry } from './user-directory.js';

/**
 * The users table.
 *
 * @example
 * const users = new DynamoUserDirectory(createDocumentClient(config), 'nimbus-Users');
 * await users.find('alice'); // { username: 'alice', passwordHash: '$7$…' } or undefined
 */
export class DynamoUserDirectory implements UserDirectory {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tableName: string,
  ) {}

  /** One eventually consistent GetItem (half a read unit): a new or removed user counts within a second or so. */
  async find(username: string): Promise<UserEntry | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({
        TableName: this.tableName,
        Key: { username },
        ProjectionExpression: 'username, passwordHash',
      }),
    );
    return typeof Item?.passwordHash === 'string' ? { username, passwordHash: Item.passwordHash } : undefined;
  }

  /** Adds the user or replaces its hash; true when it replaced one. */
  async put(entry: UserEntry, now = new Date()): Promise<boolean> {
    const { Attributes } = await this.db.send(
      new PutCommand({
        TableName: this.tableName,
        Item: { ...entry, updatedAt: now.toISOString() },
        ReturnValues: 'ALL_OLD',
      }),
    );
    return Attributes !== undefined;
  }

  /** Removes the user; false when there was none. */
  async remove(username: string): Promise<boolean> {
    const { Attributes } = await this.db.send(
      new DeleteCommand({ TableName: this.tableName, Key: { username }, ReturnValues: 'ALL_OLD' }),
    );
    return Attributes !== undefined;
  }

  /** Every user name with when it last changed, page by page (a Scan: for administration, not CONNECT). */
  async *list(): AsyncGenerator<{ username: string; updatedAt?: string }> {
    const pages = paginateScan(
      { client: this.db },
      { TableName: this.tableName, ProjectionExpression: 'username, updatedAt' },
    );
    for await (const page of pages) {
      for (const item of page.Items ?? []) {
        yield { username: String(item.username), updatedAt: item.updatedAt as string | undefined };
      }
    }
  }
}
