import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { BrokerCounters, BrokerFigures, BrokerStore } from '../../ports.js';
import type { Database } from './database.js';

/** The LoginAttempts item that holds the running counts; no user name or address starts with `broker#`. */
const countersKey = { key: 'broker#counters' };

/**
 * The figures `$SYS/` reports (docs/adr/0022): the running counts as numbers on one item, added to
 * with `ADD` (atomic, so concurrent fan-out batches lose nothing), and the subscription and
 * retained counts from `DescribeTable`, which costs no capacity however large the tables grow.
 *
 * @example
 * await new BrokerFiguresPart(database).addBrokerCounters({ messagesReceived: 25, messagesSent: 40 });
 */
export class BrokerFiguresPart implements Pick<BrokerStore, 'addBrokerCounters' | 'brokerFigures'> {
  constructor(private readonly database: Database) {}

  async addBrokerCounters(delta: Partial<BrokerCounters>): Promise<void> {
    const received = delta.messagesReceived ?? 0;
    const sent = delta.messagesSent ?? 0;
    if (received === 0 && sent === 0) return;
    const { db, tables } = this.database;
    await db.send(
      new UpdateCommand({
        TableName: tables.LoginAttempts,
        Key: countersKey,
        UpdateExpression: 'ADD messagesReceived :r, messagesSent :s',
        ExpressionAttributeValues: { ':r': received, ':s': sent },
      }),
    );
  }

  async brokerFigures(): Promise<BrokerFigures> {
    const { db, tables } = this.database;
    const itemCount = async (table: string) =>
      (await db.send(new DescribeTableCommand({ TableName: table }))).Table?.ItemCount ?? 0;
    const [counters, subscriptions, retainedMessages] = await Promise.all([
      db.send(new GetCommand({ TableName: tables.LoginAttempts, Key: countersKey })),
      itemCount(tables.Subscriptions),
      itemCount(tables.Retained),
    ]);
    return {
      messagesReceived: Number(counters.Item?.messagesReceived ?? 0),
      messagesSent: Number(counters.Item?.messagesSent ?? 0),
      subscriptions,
      retainedMessages,
    };
  }
}
