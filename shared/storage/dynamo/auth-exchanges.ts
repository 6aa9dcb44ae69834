import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import type { AuthExchange, BrokerStore } from '../../ports.js';
import { type Database, epochSeconds } from './database.js';

type AuthExchangeOps = Pick<BrokerStore, 'putAuthExchange' | 'getAuthExchange' | 'deleteAuthExchange'>;

/** The LoginAttempts item of a connection's exchange; no user name or address starts with `auth#`. */
const exchangeKey = (connectionId: string) => ({ key: `auth#${connectionId}` });

/**
 * MQTT 5 authentication exchanges in progress, one LoginAttempts item per connection with the
 * table's time to live, so an exchange a client abandons costs nothing to forget
 * (docs/adr/0022-enhanced-authentication-and-sys-topics.md).
 *
 * @example
 * await new AuthExchanges(database).putAuthExchange({ connectionId, method, state, expiresAt });
 */
export class AuthExchanges implements AuthExchangeOps {
  constructor(private readonly database: Database) {}

  async putAuthExchange(exchange: AuthExchange): Promise<void> {
    const { db, tables } = this.database;
    const item = {
      ...exchangeKey(exchange.connectionId),
      connectionId: exchange.connectionId,
      method: exchange.method,
      state: exchange.state,
      exchangeExpiresAt: exchange.expiresAt,
      ...(exchange.connect ? { connect: exchange.connect } : {}),
      // The table's TTL (epoch seconds) removes it some time after; reads check the exact time.
      expiresAt: epochSeconds(exchange.expiresAt) + 1,
    };
    await db.send(new PutCommand({ TableName: tables.LoginAttempts, Item: item }));
  }

  async getAuthExchange(connectionId: string, now: number): Promise<AuthExchange | undefined> {
    const { db, tables } = this.database;
    const { Item } = await db.send(
      new GetCommand({
        TableName: tables.LoginAttempts,
        Key: exchangeKey(connectionId),
        ConsistentRead: true,
      }),
    );
    if (!Item || Number(Item.exchangeExpiresAt) <= now) return undefined;
    return {
      connectionId,
      method: String(Item.method),
      state: String(Item.state),
      expiresAt: Number(Item.exchangeExpiresAt),
      ...(Item.connect instanceof Uint8Array ? { connect: Item.connect } : {}),
    };
  }

  async deleteAuthExchange(connectionId: string): Promise<void> {
    const { db, tables } = this.database;
    await db.send(new DeleteCommand({ TableName: tables.LoginAttempts, Key: exchangeKey(connectionId) }));
  }
}
