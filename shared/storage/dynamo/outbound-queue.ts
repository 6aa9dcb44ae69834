import { DeleteCommand, PutCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { propertiesField } from '../../message-properties.js';
import type { BrokerStore, OutboundMessage, QoS } from '../../ports.js';
import { outboundEntry, outboundPrefix } from '../keys.js';
import { failedConditions, ifConditionHolds } from './conditions.js';
import { type Database, epochSeconds } from './database.js';
import { deliveryTtlSeconds } from './deliveries.js';
import { queryAll } from './paging.js';

type OutboundQueuePort = Pick<
  BrokerStore,
  | 'putOutbound'
  | 'deleteOutbound'
  | 'keepInFlight'
  | 'forgetInFlight'
  | 'markOutboundReleased'
  | 'markOutboundUnsent'
  | 'outboundMessages'
>;

/**
 * A session's outbound queue in the Deliveries table: QoS 1/2 messages kept
 * until acknowledged (queued while offline, resent at reconnect), counted
 * against the queue bound on the session's item in the same transaction
 * (docs/adr/0004-session-state.md), and a clean session's in-flight copies of
 * shared-subscription messages (docs/adr/0020-shared-subscriptions.md).
 *
 * @example
 * const part = new OutboundQueue({ db, tables, now: Date.now });
 * await part.putOutbound('sensor-1', message, 1000); // false when the queue is full
 */
export class OutboundQueue implements OutboundQueuePort {
  constructor(private readonly database: Database) {}

  async putOutbound(clientId: string, message: OutboundMessage, maxQueued: number): Promise<boolean> {
    const { db, tables, now } = this.database;
    // One transaction: the queued row and the session's counter change together or not at all.
    const failed = await failedConditions(
      db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: tables.Deliveries,
                Item: {
                  clientId,
                  entry: outboundEntry(message.packetId),
                  ...message,
                  expiresAt: epochSeconds(now()) + deliveryTtlSeconds,
                },
                ConditionExpression: 'attribute_not_exists(entry)',
              },
            },
            {
              Update: {
                TableName: tables.Sessions,
                Key: { clientId },
                UpdateExpression: 'ADD queued :one',
                // The session must still exist: a counter alone would leave a row without a session id
                // that no CONNECT could resume or replace.
                ConditionExpression:
                  'attribute_exists(clientId) AND (attribute_not_exists(queued) OR queued < :max)',
                ExpressionAttributeValues: { ':one': 1, ':max': maxQueued },
              },
            },
          ],
        }),
      ),
    );
    // A retried fan-out finds the row already queued (and counted).
    return failed.length === 0 || failed.includes(0);
  }

  async deleteOutbound(clientId: string, packetId: number): Promise<void> {
    const { db, tables } = this.database;
    const key = { clientId, entry: outboundEntry(packetId) };
    const failed = await failedConditions(
      db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Delete: {
                TableName: tables.Deliveries,
                Key: key,
                ConditionExpression: 'attribute_exists(entry)',
              },
            },
            {
              Update: {
                TableName: tables.Sessions,
                Key: { clientId },
                UpdateExpression: 'ADD queued :minus',
                ConditionExpression: 'attribute_exists(clientId)',
                ExpressionAttributeValues: { ':minus': -1 },
              },
            },
          ],
        }),
      ),
    );
    // Only the session is gone, and its counter with it: the row still goes.
    if (failed.length === 1 && failed[0] === 1) {
      await db.send(new DeleteCommand({ TableName: tables.Deliveries, Key: key }));
    }
  }

  async keepInFlight(clientId: string, message: OutboundMessage): Promise<void> {
    const { db, tables, now } = this.database;
    // One conditional put, no counter: a clean session's copies end with it (deleteDeliveries, else TTL).
    await ifConditionHolds(
      db.send(
        new PutCommand({
          TableName: tables.Deliveries,
          Item: {
            clientId,
            entry: outboundEntry(message.packetId),
            ...message,
            expiresAt: epochSeconds(now()) + deliveryTtlSeconds,
          },
          ConditionExpression: 'attribute_not_exists(entry)',
        }),
      ),
    );
  }

  async forgetInFlight(clientId: string, packetId: number): Promise<void> {
    const { db, tables } = this.database;
    await db.send(
      new DeleteCommand({ TableName: tables.Deliveries, Key: { clientId, entry: outboundEntry(packetId) } }),
    );
  }

  markOutboundReleased(clientId: string, packetId: number): Promise<void> {
    return this.setFlag(clientId, packetId, 'released', true);
  }

  markOutboundUnsent(clientId: string, packetId: number): Promise<void> {
    return this.setFlag(clientId, packetId, 'sent', false);
  }

  /** Sets one flag of a queued copy; nothing when the copy is gone (acknowledged, or the session's state deleted). */
  private async setFlag(
    clientId: string,
    packetId: number,
    flag: 'released' | 'sent',
    value: boolean,
  ): Promise<void> {
    const { db, tables } = this.database;
    await ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Deliveries,
          Key: { clientId, entry: outboundEntry(packetId) },
          UpdateExpression: 'SET #flag = :value',
          ConditionExpression: 'attribute_exists(entry)',
          ExpressionAttributeNames: { '#flag': flag },
          ExpressionAttributeValues: { ':value': value },
        }),
      ),
    );
  }

  async outboundMessages(clientId: string): Promise<OutboundMessage[]> {
    const { db, tables } = this.database;
    const items = await queryAll(db, {
      TableName: tables.Deliveries,
      KeyConditionExpression: 'clientId = :c AND begins_with(entry, :out)',
      ExpressionAttributeValues: { ':c': clientId, ':out': outboundPrefix },
      ConsistentRead: true,
    });
    return items
      .map((item) => ({
        packetId: Number(item.packetId),
        seq: Number(item.seq),
        topic: String(item.topic),
        payload: item.payload instanceof Uint8Array ? item.payload : new Uint8Array(),
        qos: item.qos as QoS,
        retain: Boolean(item.retain),
        sent: Boolean(item.sent),
        released: Boolean(item.released),
        ...propertiesField(item.properties),
        ...(typeof item.publishedAt === 'number' ? { publishedAt: item.publishedAt } : {}),
        ...(Array.isArray(item.subscriptionIdentifiers)
          ? { subscriptionIdentifiers: item.subscriptionIdentifiers.map(Number) }
          : {}),
        ...(typeof item.share === 'string' ? { share: item.share } : {}),
        ...(typeof item.shareKey === 'string' ? { shareKey: item.shareKey } : {}),
      }))
      .sort((a, b) => a.seq - b.seq);
  }
}
