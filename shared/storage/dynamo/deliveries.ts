import {
  DeleteCommand,
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { BrokerStore, StoredMessage } from '../../ports.js';
import { inboundEntry, inboundPrefix, packetIdOf, qos2Entry, qos2PacketEntry } from '../keys.js';
import { packPayload } from '../payload-codec.js';
import { failedConditions, ifConditionHolds } from './conditions.js';
import { type Database, epochSeconds } from './database.js';
import { batchWrite, queryAll } from './paging.js';

/** Messages only need to outlive the stream's 24-hour retention. */
const messageTtlSeconds = 24 * 3600;
/** Per-session packet state outlives a client that never comes back by a week, then TTL removes it. */
export const deliveryTtlSeconds = 7 * 24 * 3600;

type DeliveriesPort = Pick<
  BrokerStore,
  | 'putMessage'
  | 'putQoS2Message'
  | 'releaseInboundPacketId'
  | 'reservePacketId'
  | 'reservePacketIds'
  | 'claimQoS2Delivery'
  | 'markQoS2Received'
  | 'deleteDeliveries'
>;

/**
 * The Messages table (accepted PUBLISHes, which its stream carries to the
 * fan-out) and the Deliveries table (per-session packet state,
 * docs/adr/0004-session-state.md) but for the outbound queue
 * (outbound-queue.ts). The packet id counter lives on the session's item in
 * the Sessions table.
 *
 * @example
 * const part = new Deliveries({ db, tables, now: Date.now });
 * await part.putQoS2Message(message, 7); // false while packet id 7 awaits PUBREL
 */
export class Deliveries implements DeliveriesPort {
  constructor(private readonly database: Database) {}

  async putMessage(message: StoredMessage): Promise<void> {
    const { db, tables } = this.database;
    await db.send(new PutCommand({ TableName: tables.Messages, Item: messageItem(message) }));
  }

  async putQoS2Message(
    message: StoredMessage,
    packetId: number,
    receiveMaximum?: number,
  ): Promise<boolean | 'exceeded'> {
    const { db, tables } = this.database;
    // [MQTT-3.3.4-8] the count of packet ids awaiting PUBREL moves with the marker, or not at all.
    const counter =
      receiveMaximum === undefined
        ? []
        : [
            {
              Update: {
                TableName: tables.Sessions,
                Key: { clientId: message.publisher },
                UpdateExpression: 'ADD inboundQoS2 :one',
                ConditionExpression:
                  'attribute_exists(clientId) AND (attribute_not_exists(inboundQoS2) OR inboundQoS2 < :max)',
                ExpressionAttributeValues: { ':one': 1, ':max': receiveMaximum },
              },
            },
          ];
    // One transaction: a resent PUBLISH is never stored twice, and a crash never leaves one without the other.
    const failed = await failedConditions(
      db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: tables.Deliveries,
                Item: {
                  clientId: message.publisher,
                  entry: inboundEntry(packetId),
                  expiresAt: epochSeconds(message.publishedAt) + deliveryTtlSeconds,
                },
                // [MQTT-4.3.3-2] the packet id is awaiting PUBREL: a resent PUBLISH.
                ConditionExpression: 'attribute_not_exists(entry)',
              },
            },
            { Put: { TableName: tables.Messages, Item: messageItem(message) } },
            ...counter,
          ],
        }),
      ),
    );
    if (failed.includes(0)) return false;
    return failed.length === 0 ? true : 'exceeded';
  }

  async releaseInboundPacketId(clientId: string, packetId: number, counted = false): Promise<void> {
    const { db, tables } = this.database;
    const key = { clientId, entry: inboundEntry(packetId) };
    if (!counted) {
      await db.send(new DeleteCommand({ TableName: tables.Deliveries, Key: key }));
      return;
    }
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
                UpdateExpression: 'ADD inboundQoS2 :minus',
                ConditionExpression: 'inboundQoS2 > :zero',
                ExpressionAttributeValues: { ':minus': -1, ':zero': 0 },
              },
            },
          ],
        }),
      ),
    );
    // Only the count was missing (reset with the session's state): the marker still goes.
    if (failed.length === 1 && failed[0] === 1) {
      await db.send(new DeleteCommand({ TableName: tables.Deliveries, Key: key }));
    }
  }

  async reservePacketId(clientId: string): Promise<{ packetId: number; seq: number }> {
    const { db, tables } = this.database;
    const { Attributes } = await db.send(
      new UpdateCommand({
        TableName: tables.Sessions,
        Key: { clientId },
        UpdateExpression: 'ADD nextPacketId :one',
        ConditionExpression: 'attribute_exists(clientId)',
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const seq = Number(Attributes?.nextPacketId);
    return { packetId: packetIdOf(seq), seq };
  }

  async reservePacketIds(clientId: string, count: number): Promise<Array<{ packetId: number; seq: number }>> {
    const { db, tables } = this.database;
    // One atomic ADD: the range is this caller's alone, however many others reserve at the same time.
    const { Attributes } = await db.send(
      new UpdateCommand({
        TableName: tables.Sessions,
        Key: { clientId },
        UpdateExpression: 'ADD nextPacketId :n',
        ConditionExpression: 'attribute_exists(clientId)',
        ExpressionAttributeValues: { ':n': count },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const first = Number(Attributes?.nextPacketId) - count + 1;
    return Array.from({ length: count }, (_, i) => ({ packetId: packetIdOf(first + i), seq: first + i }));
  }

  async claimQoS2Delivery(
    clientId: string,
    messageKey: string,
  ): Promise<{ packetId: number; seq: number; first: boolean; received: boolean }> {
    const { db, tables, now } = this.database;
    const marker = { clientId, entry: qos2Entry(messageKey) };
    const reserved = await this.reservePacketId(clientId);
    const expiresAt = epochSeconds(now()) + deliveryTtlSeconds;
    const first = await ifConditionHolds(
      db.send(
        new PutCommand({
          TableName: tables.Deliveries,
          Item: { ...marker, ...reserved, expiresAt },
          ConditionExpression: 'attribute_not_exists(entry)',
        }),
      ),
    );
    if (!first) {
      const { Item } = await db.send(
        new GetCommand({ TableName: tables.Deliveries, Key: marker, ConsistentRead: true }),
      );
      return {
        packetId: Number(Item?.packetId),
        seq: Number(Item?.seq),
        first: false,
        received: Boolean(Item?.received),
      };
    }
    // PUBREC names only the packet id: this entry leads from it back to the marker.
    await db.send(
      new PutCommand({
        TableName: tables.Deliveries,
        Item: { clientId, entry: qos2PacketEntry(reserved.packetId), messageKey, expiresAt },
      }),
    );
    return { ...reserved, first: true, received: false };
  }

  async markQoS2Received(clientId: string, packetId: number): Promise<void> {
    const { db, tables } = this.database;
    const { Item } = await db.send(
      new GetCommand({
        TableName: tables.Deliveries,
        Key: { clientId, entry: qos2PacketEntry(packetId) },
        ConsistentRead: true,
      }),
    );
    if (!Item) return;
    // False when the marker is already gone (the session's state was deleted).
    await ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Deliveries,
          Key: { clientId, entry: qos2Entry(String(Item.messageKey)) },
          UpdateExpression: 'SET received = :yes',
          ConditionExpression: 'attribute_exists(entry)',
          ExpressionAttributeValues: { ':yes': true },
        }),
      ),
    );
  }

  async deleteDeliveries(clientId: string): Promise<void> {
    const { db, tables } = this.database;
    const items = await queryAll(db, {
      TableName: tables.Deliveries,
      KeyConditionExpression: 'clientId = :c',
      ExpressionAttributeValues: { ':c': clientId },
      ProjectionExpression: 'clientId, entry',
    });
    await batchWrite(
      db,
      tables.Deliveries,
      items.map((item) => ({ DeleteRequest: { Key: { clientId: item.clientId, entry: item.entry } } })),
    );
    // The count of inbound packet ids goes with them; one write, only when there were some.
    if (items.some((item) => String(item.entry).startsWith(inboundPrefix))) {
      await ifConditionHolds(
        db.send(
          new UpdateCommand({
            TableName: tables.Sessions,
            Key: { clientId },
            UpdateExpression: 'REMOVE inboundQoS2',
            ConditionExpression: 'attribute_exists(clientId)',
          }),
        ),
      );
    }
  }
}

/** A message as its Messages item: the payload compressed when that saves write units (docs/adr/0023-publish-ingress-cost.md). */
function messageItem(message: StoredMessage): Record<string, unknown> {
  return {
    ...message,
    ...packPayload(message.payload),
    expiresAt: epochSeconds(message.publishedAt) + messageTtlSeconds,
  };
}
