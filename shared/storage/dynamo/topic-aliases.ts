import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { BrokerStore } from '../../ports.js';
import { ifConditionHolds } from './conditions.js';
import type { Database } from './database.js';

type TopicAliasesPort = Pick<
  BrokerStore,
  'setInboundTopicAliases' | 'assignTopicAlias' | 'confirmTopicAlias'
>;

/**
 * MQTT 5 Topic Aliases: the client's, on its Connections row, and the broker's, on the session's
 * row in the Sessions table, tagged with the connection they belong to
 * (docs/adr/0019-topic-aliases.md).
 *
 * @example
 * const part = new TopicAliases({ db, tables, now: Date.now });
 * await part.assignTopicAlias('sensor-1', 'conn-1', 'site/7/pressure', 1); // false if taken
 */
export class TopicAliases implements TopicAliasesPort {
  constructor(private readonly database: Database) {}

  async setInboundTopicAliases(
    connectionId: string,
    aliases: Readonly<Record<string, string>>,
  ): Promise<void> {
    const { db, tables } = this.database;
    // The whole map: a write costs the item's size whatever it changes. A gone connection stays gone.
    await ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Connections,
          Key: { connectionId },
          UpdateExpression: 'SET inboundTopicAliases = :aliases',
          ConditionExpression: 'attribute_exists(connectionId)',
          ExpressionAttributeValues: { ':aliases': aliases },
        }),
      ),
    );
  }

  async assignTopicAlias(
    clientId: string,
    connectionId: string,
    topic: string,
    alias: number,
  ): Promise<boolean> {
    const { db, tables } = this.database;
    const entry = { topic, confirmed: false };
    // Alias 1 starts this connection's map; alias n joins one of exactly n - 1 entries, so two
    // deliveries racing for the same number cannot both win, and an alias never changes topic.
    const first = alias === 1;
    return ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Sessions,
          Key: { clientId },
          UpdateExpression: first
            ? 'SET outboundTopicAliases = :fresh'
            : 'SET outboundTopicAliases.aliases.#alias = :entry',
          ConditionExpression: first
            ? 'connectionId = :c AND (attribute_not_exists(outboundTopicAliases) OR outboundTopicAliases.connectionId <> :c)'
            : 'connectionId = :c AND outboundTopicAliases.connectionId = :c AND size(outboundTopicAliases.aliases) = :before',
          ...(first ? {} : { ExpressionAttributeNames: { '#alias': String(alias) } }),
          ExpressionAttributeValues: first
            ? { ':c': connectionId, ':fresh': { connectionId, aliases: { 1: entry } } }
            : { ':c': connectionId, ':entry': entry, ':before': alias - 1 },
        }),
      ),
    );
  }

  async confirmTopicAlias(
    clientId: string,
    connectionId: string,
    topic: string,
    alias: number,
  ): Promise<void> {
    const { db, tables } = this.database;
    await ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Sessions,
          Key: { clientId },
          UpdateExpression: 'SET outboundTopicAliases.aliases.#alias.confirmed = :yes',
          ConditionExpression:
            'connectionId = :c AND outboundTopicAliases.connectionId = :c AND outboundTopicAliases.aliases.#alias.topic = :t',
          ExpressionAttributeNames: { '#alias': String(alias) },
          ExpressionAttributeValues: { ':c': connectionId, ':t': topic, ':yes': true },
        }),
      ),
    );
  }
}
