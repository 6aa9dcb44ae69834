import { DeleteCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { expiresAtSeconds, propertiesField } from '../../message-properties.js';
import type { BrokerStore, QoS, RetainedMessage } from '../../ports.js';
import { topicMatches } from '../../topics.js';
import { retainedRoot } from '../keys.js';
import type { Database } from './database.js';
import { queryAll, scanAll } from './paging.js';

/**
 * The Retained table: partitioned by the topic's first level, sorted by topic.
 *
 * @example
 * const part = new Retained({ db, tables, now: Date.now });
 * await part.retainedMatching('home/+/temp');
 */
export class Retained implements Pick<BrokerStore, 'putRetained' | 'retainedMatching'> {
  constructor(private readonly database: Database) {}

  async putRetained(message: RetainedMessage): Promise<void> {
    const { db, tables } = this.database;
    const key = { root: retainedRoot(message.topic), topic: message.topic };
    // [MQTT-3.3.1-10] an empty payload clears the topic's retained message.
    if (message.payload.length === 0) {
      await db.send(new DeleteCommand({ TableName: tables.Retained, Key: key }));
    } else {
      // An expiring message carries its time-to-live, so DynamoDB deletes it once expired, at no write cost.
      const expiresAt = expiresAtSeconds(message);
      const item = { ...key, ...message, ...(expiresAt !== undefined ? { expiresAt } : {}) };
      await db.send(new PutCommand({ TableName: tables.Retained, Item: item }));
    }
  }

  async retainedMatching(filter: string): Promise<RetainedMessage[]> {
    const { db, tables } = this.database;
    const first = filter.split('/')[0];
    // A filter with a literal first level reads one partition; one starting with a wildcard reads them all.
    const items =
      first === '+' || first === '#'
        ? await scanAll(db, tables.Retained)
        : await queryAll(db, {
            TableName: tables.Retained,
            KeyConditionExpression: 'root = :r',
            ExpressionAttributeValues: { ':r': retainedRoot(filter) },
            ConsistentRead: true,
          });
    return items
      .filter((item) => topicMatches(filter, String(item.topic)))
      .map((item) => ({
        topic: String(item.topic),
        payload: item.payload instanceof Uint8Array ? item.payload : new Uint8Array(),
        qos: item.qos as QoS,
        retain: true,
        publishedAt: Number(item.publishedAt),
        ...propertiesField(item.properties),
      }));
  }
}
