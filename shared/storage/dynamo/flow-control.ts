import { GetCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { BrokerStore, HeldPacket } from '../../ports.js';
import { heldEntry, heldPrefix } from '../keys.js';
import { failedConditions, ifConditionHolds } from './conditions.js';
import { type Database, epochSeconds } from './database.js';
import { batchWrite, queryAll } from './paging.js';

/** Held packets outlive a connection by as long as the rest of its packet state. */
const heldTtlSeconds = 7 * 24 * 3600;

/** Claims lost to a reconnect's reset before giving up until the next acknowledgement. */
const claimAttempts = 3;

type FlowControlPort = Pick<
  BrokerStore,
  'takeSendPlace' | 'holdPacket' | 'claimHeldPacket' | 'heldPacketSent' | 'freeSendPlace' | 'resetFlow'
>;

/**
 * The client's Receive Maximum (shared/broker/flow-control.ts): the places taken (`inFlight`) and
 * the packets held back (`waiting`) are counters on the session's item, so every decision is one
 * conditional write however many fan-out instances deliver at once; the held packets are `flow#`
 * entries of the Deliveries table, sorted by seq, so the oldest is one short query away.
 *
 * @example
 * const part = new FlowControl({ db, tables, now: Date.now });
 * await part.takeSendPlace('c', 'conn-1', 2); // false once 2 are unacknowledged
 */
export class FlowControl implements FlowControlPort {
  constructor(private readonly database: Database) {}

  async takeSendPlace(clientId: string, connectionId: string, receiveMaximum: number): Promise<boolean> {
    const { db, tables } = this.database;
    return ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Sessions,
          Key: { clientId },
          UpdateExpression: 'SET inFlight = if_not_exists(inFlight, :zero) + :one',
          // [MQTT-3.3.4-9] a free place, and nothing held back that this one would overtake.
          ConditionExpression:
            'connectionId = :c AND (attribute_not_exists(inFlight) OR inFlight < :max) AND (attribute_not_exists(waiting) OR waiting = :zero)',
          ExpressionAttributeValues: { ':c': connectionId, ':max': receiveMaximum, ':zero': 0, ':one': 1 },
        }),
      ),
    );
  }

  async holdPacket(
    clientId: string,
    connectionId: string,
    receiveMaximum: number,
    held: HeldPacket,
  ): Promise<boolean> {
    const { db, tables, now } = this.database;
    const failed = await failedConditions(
      db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: tables.Deliveries,
                Item: {
                  clientId,
                  entry: heldEntry(held.seq),
                  seq: held.seq,
                  frame: held.frame,
                  expiresAt: epochSeconds(now()) + heldTtlSeconds,
                },
                ConditionExpression: 'attribute_not_exists(entry)',
              },
            },
            {
              Update: {
                TableName: tables.Sessions,
                Key: { clientId },
                UpdateExpression: 'ADD waiting :one',
                // Held only while a place-freeing acknowledgement is sure to come and look.
                ConditionExpression: 'connectionId = :c AND (inFlight >= :max OR waiting > :zero)',
                ExpressionAttributeValues: {
                  ':c': connectionId,
                  ':max': receiveMaximum,
                  ':zero': 0,
                  ':one': 1,
                },
              },
            },
          ],
        }),
      ),
    );
    // A retried fan-out finds it held already.
    return failed.length === 0 || failed.includes(0);
  }

  async claimHeldPacket(clientId: string, receiveMaximum: number): Promise<HeldPacket | undefined> {
    const { db, tables } = this.database;
    for (let attempt = 0; attempt < claimAttempts; attempt++) {
      const { Items } = await db.send(
        new QueryCommand({
          TableName: tables.Deliveries,
          KeyConditionExpression: 'clientId = :c AND begins_with(entry, :held)',
          ExpressionAttributeValues: { ':c': clientId, ':held': heldPrefix },
          ConsistentRead: true,
          Limit: 1,
        }),
      );
      const oldest = Items?.[0];
      if (!oldest) return undefined;
      const failed = await failedConditions(
        db.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                Delete: {
                  TableName: tables.Deliveries,
                  Key: { clientId, entry: oldest.entry },
                  ConditionExpression: 'attribute_exists(entry)',
                },
              },
              {
                Update: {
                  TableName: tables.Sessions,
                  Key: { clientId },
                  UpdateExpression: 'SET inFlight = if_not_exists(inFlight, :zero) + :one',
                  ConditionExpression: 'attribute_not_exists(inFlight) OR inFlight < :max',
                  ExpressionAttributeValues: { ':max': receiveMaximum, ':zero': 0, ':one': 1 },
                },
              },
            ],
          }),
        ),
      );
      if (failed.length === 0) return { seq: Number(oldest.seq), frame: String(oldest.frame) };
      if (failed.includes(1)) return undefined; // every place is taken
    }
    return undefined;
  }

  async heldPacketSent(clientId: string): Promise<void> {
    const { db, tables } = this.database;
    await ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Sessions,
          Key: { clientId },
          UpdateExpression: 'ADD waiting :minus',
          ConditionExpression: 'waiting > :zero',
          ExpressionAttributeValues: { ':minus': -1, ':zero': 0 },
        }),
      ),
    );
  }

  async freeSendPlace(clientId: string): Promise<boolean> {
    const { db, tables } = this.database;
    let waiting: unknown;
    const freed = await ifConditionHolds(
      db
        .send(
          new UpdateCommand({
            TableName: tables.Sessions,
            Key: { clientId },
            UpdateExpression: 'ADD inFlight :minus',
            ConditionExpression: 'inFlight > :zero',
            ExpressionAttributeValues: { ':minus': -1, ':zero': 0 },
            ReturnValues: 'ALL_NEW',
          }),
        )
        .then(({ Attributes }) => {
          waiting = Attributes?.waiting;
        }),
    );
    if (!freed) {
      // No place was counted (a reconnect reset them): still say whether packets wait.
      const { Item } = await db.send(
        new GetCommand({
          TableName: tables.Sessions,
          Key: { clientId },
          ConsistentRead: true,
          ProjectionExpression: 'waiting',
        }),
      );
      waiting = Item?.waiting;
    }
    return Number(waiting ?? 0) > 0;
  }

  async resetFlow(clientId: string, inFlight: number): Promise<void> {
    const { db, tables } = this.database;
    const held = await queryAll(db, {
      TableName: tables.Deliveries,
      KeyConditionExpression: 'clientId = :c AND begins_with(entry, :held)',
      ExpressionAttributeValues: { ':c': clientId, ':held': heldPrefix },
      ProjectionExpression: 'clientId, entry',
      ConsistentRead: true,
    });
    await batchWrite(
      db,
      tables.Deliveries,
      held.map((item) => ({ DeleteRequest: { Key: { clientId: item.clientId, entry: item.entry } } })),
    );
    await ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Sessions,
          Key: { clientId },
          UpdateExpression: 'SET inFlight = :n, waiting = :zero',
          ConditionExpression: 'attribute_exists(clientId)',
          ExpressionAttributeValues: { ':n': inFlight, ':zero': 0 },
        }),
      ),
    );
  }
}
