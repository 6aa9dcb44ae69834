import { DeleteCommand, GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { ApplicationMessage, BrokerStore, ConnectionRecord, SessionRecord } from '../../ports.js';
import { ifConditionHolds } from './conditions.js';
import { type Database, epochSeconds } from './database.js';
import { batchGet, queryAll, scanPages } from './paging.js';
import { dueSessionIds, shardOf } from './shards.js';

/** Connections outlive API Gateway's 2-hour cap by an hour, then TTL removes rows whose $disconnect never came. */
const connectionTtlSeconds = 3 * 3600;

type ConnectionsAndSessionsPort = Pick<
  BrokerStore,
  | 'getConnection'
  | 'claimConnection'
  | 'putConnection'
  | 'deleteConnection'
  | 'touchConnection'
  | 'connectionsDue'
  | 'savePublishBucket'
  | 'markSharedSubscriber'
  | 'takeWill'
  | 'scanConnections'
  | 'getSession'
  | 'replaceSession'
  | 'getSessions'
  | 'endSession'
  | 'sessionsExpired'
  | 'deleteExpiredSession'
>;

/**
 * The TTL backstop keeps an expired session a day past its expiry: the sweep
 * removes it with its subscriptions and queue first; TTL only catches what the sweep missed.
 */
const sessionTtlGraceSeconds = 24 * 3600;

/**
 * Partitions of the session expiry index: sessions end at the rate clients
 * disconnect, and one index partition takes 1,000 writes a second; an empty
 * sweep costs one half-unit query per shard (docs/adr/0018-session-expiry.md).
 */
const expiryShards = 16;

/**
 * The Connections table (one row per live WebSocket connection) and the
 * Sessions table (where each client id's session stands).
 *
 * @example
 * const part = new ConnectionsAndSessions({ db, tables, now: Date.now });
 * await part.claimConnection(record); // false for a second CONNECT
 */
/** The session update: fields that a new CONNECT may leave out are removed, not kept from the last one. */
function sessionUpdate(next: SessionRecord): string {
  const set = ['sessionId = :s', 'connectionId = :c', 'protocolVersion = :v', 'cleanSession = :clean'];
  const remove: string[] = [];
  if (next.owner === undefined) remove.push('#owner');
  else set.push('#owner = :owner');
  if (next.maximumPacketSize === undefined) remove.push('maximumPacketSize');
  else set.push('maximumPacketSize = :m');
  if (next.receiveMaximum === undefined) remove.push('receiveMaximum');
  else set.push('receiveMaximum = :rm');
  if (next.sessionExpirySeconds === undefined) remove.push('sessionExpirySeconds');
  else set.push('sessionExpirySeconds = :e');
  if (next.topicAliasMaximum === undefined) remove.push('topicAliasMaximum');
  else set.push('topicAliasMaximum = :aliases');
  // Online again: the session no longer expires, and leaves the expiry index. A new connection
  // starts with no topic aliases [MQTT-3.3.2-7].
  remove.push('sessionExpiresAt', 'expiryShard', 'expiresAt', 'outboundTopicAliases');
  // [MQTT-3.1.3-9] the client is back: its delayed will is never published, and leaves the will index.
  remove.push('pendingWill', 'willDueAt', 'willShard');
  return `SET ${set.join(', ')}${remove.length > 0 ? ` REMOVE ${remove.join(', ')}` : ''}`;
}

export class ConnectionsAndSessions implements ConnectionsAndSessionsPort {
  constructor(private readonly database: Database) {}

  async getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
    const { db, tables } = this.database;
    const { Item } = await db.send(
      new GetCommand({ TableName: tables.Connections, Key: { connectionId }, ConsistentRead: true }),
    );
    return Item as ConnectionRecord | undefined;
  }

  async putConnection(connection: ConnectionRecord): Promise<void> {
    const { db, tables } = this.database;
    await db.send(new PutCommand({ TableName: tables.Connections, Item: connectionItem(connection) }));
  }

  async deleteConnection(connectionId: string): Promise<void> {
    const { db, tables } = this.database;
    await db.send(new DeleteCommand({ TableName: tables.Connections, Key: { connectionId } }));
  }

  async claimConnection(connection: ConnectionRecord): Promise<boolean> {
    const { db, tables } = this.database;
    return ifConditionHolds(
      db.send(
        new PutCommand({
          TableName: tables.Connections,
          Item: connectionItem(connection),
          ConditionExpression: 'attribute_not_exists(connectionId)',
        }),
      ),
    );
  }

  async touchConnection(connectionId: string, now: number, keepAliveDue?: number): Promise<void> {
    const { db, tables } = this.database;
    // One write moves both: the index row follows the record in the same item.
    const due =
      keepAliveDue === undefined ? {} : { ':due': keepAliveDue, ':shard': keepAliveShard(connectionId) };
    // A connection already gone stays gone.
    await ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Connections,
          Key: { connectionId },
          UpdateExpression:
            keepAliveDue === undefined
              ? 'SET lastSeen = :now'
              : 'SET lastSeen = :now, keepAliveDue = :due, keepAliveShard = :shard',
          ConditionExpression: 'attribute_exists(connectionId)',
          ExpressionAttributeValues: { ':now': now, ...due },
        }),
      ),
    );
  }

  async connectionsDue(now: number): Promise<string[]> {
    const { db, tables } = this.database;
    const shards = Array.from({ length: keepAliveShards }, (_, shard) =>
      queryAll(db, {
        TableName: tables.Connections,
        IndexName: 'byKeepAliveDue',
        KeyConditionExpression: 'keepAliveShard = :shard AND keepAliveDue <= :now',
        ExpressionAttributeValues: { ':shard': String(shard), ':now': now },
      }),
    );
    return (await Promise.all(shards)).flat().map((item) => item.connectionId as string);
  }

  async markSharedSubscriber(connectionId: string): Promise<void> {
    const { db, tables } = this.database;
    await ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Connections,
          Key: { connectionId },
          UpdateExpression: 'SET sharedSubscriber = :yes',
          ConditionExpression: 'attribute_exists(connectionId)',
          ExpressionAttributeValues: { ':yes': true },
        }),
      ),
    );
  }

  async savePublishBucket(connectionId: string, bucket: { tokens: number; at: number }): Promise<void> {
    const { db, tables } = this.database;
    // The same item the frame already read: one write unit, and a gone connection stays gone.
    await ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Connections,
          Key: { connectionId },
          UpdateExpression: 'SET publishBucket = :bucket',
          ConditionExpression: 'attribute_exists(connectionId)',
          ExpressionAttributeValues: { ':bucket': { tokens: bucket.tokens, at: bucket.at } },
        }),
      ),
    );
  }

  async takeWill(connectionId: string): Promise<ApplicationMessage | undefined> {
    const { db, tables } = this.database;
    let will: ApplicationMessage | undefined;
    // Fails when there is no will, or another caller took it.
    await ifConditionHolds(
      db
        .send(
          new UpdateCommand({
            TableName: tables.Connections,
            Key: { connectionId },
            UpdateExpression: 'REMOVE will',
            ConditionExpression: 'attribute_exists(will)',
            ReturnValues: 'UPDATED_OLD',
          }),
        )
        .then(({ Attributes }) => {
          will = Attributes?.will as ApplicationMessage | undefined;
        }),
    );
    return will;
  }

  async *scanConnections(): AsyncIterable<ConnectionRecord[]> {
    const { db, tables } = this.database;
    for await (const page of scanPages(db, tables.Connections)) yield page as ConnectionRecord[];
  }

  async getSession(clientId: string): Promise<SessionRecord | undefined> {
    const { db, tables } = this.database;
    const { Item } = await db.send(
      new GetCommand({ TableName: tables.Sessions, Key: { clientId }, ConsistentRead: true }),
    );
    return Item as SessionRecord | undefined;
  }

  async replaceSession(next: SessionRecord, previous: SessionRecord | undefined): Promise<boolean> {
    const { db, tables } = this.database;
    return ifConditionHolds(
      db.send(
        new UpdateCommand({
          TableName: tables.Sessions,
          Key: { clientId: next.clientId },
          // The owner is the connecting user's (ADR 0008); a session started anonymously has none. A
          // client that sets no Maximum Packet Size this time takes back the last one's.
          UpdateExpression: sessionUpdate(next),
          // OWNER is a DynamoDB reserved word.
          ExpressionAttributeNames: { '#owner': 'owner' },
          // Two CONNECTs racing for one client id: the loser re-reads and so sees the winner to take over from.
          ConditionExpression: previous
            ? 'sessionId = :previousSession AND (attribute_not_exists(connectionId) OR connectionId = :previousConnection)'
            : 'attribute_not_exists(clientId)',
          ExpressionAttributeValues: {
            ':s': next.sessionId,
            ':c': next.connectionId,
            ':v': next.protocolVersion,
            ':clean': next.cleanSession,
            ...(next.owner === undefined ? {} : { ':owner': next.owner }),
            ...(next.maximumPacketSize === undefined ? {} : { ':m': next.maximumPacketSize }),
            ...(next.receiveMaximum === undefined ? {} : { ':rm': next.receiveMaximum }),
            ...(next.sessionExpirySeconds === undefined ? {} : { ':e': next.sessionExpirySeconds }),
            ...(next.topicAliasMaximum === undefined ? {} : { ':aliases': next.topicAliasMaximum }),
            ...(previous
              ? { ':previousSession': previous.sessionId, ':previousConnection': previous.connectionId ?? '' }
              : {}),
          },
        }),
      ),
    );
  }

  async getSessions(clientIds: readonly string[]): Promise<Map<string, SessionRecord>> {
    const { db, tables } = this.database;
    const keys = [...new Set(clientIds)].map((clientId) => ({ clientId }));
    const items = await batchGet(db, tables.Sessions, keys);
    return new Map(items.map((item) => [item.clientId as string, item as SessionRecord]));
  }

  async endSession(
    clientId: string,
    connectionId: string,
    cleanSession: boolean,
    expiresAt?: number,
  ): Promise<boolean> {
    const { db, tables } = this.database;
    const expiry =
      expiresAt === undefined
        ? undefined
        : {
            ':x': expiresAt,
            ':shard': String(shardOf(clientId, expiryShards)),
            ':ttl': epochSeconds(expiresAt) + sessionTtlGraceSeconds,
          };
    return ifConditionHolds(
      db.send(
        cleanSession
          ? new DeleteCommand({
              TableName: tables.Sessions,
              Key: { clientId },
              ConditionExpression: 'connectionId = :c',
              ExpressionAttributeValues: { ':c': connectionId },
            })
          : new UpdateCommand({
              TableName: tables.Sessions,
              Key: { clientId },
              UpdateExpression: expiry
                ? 'REMOVE connectionId, outboundTopicAliases SET sessionExpiresAt = :x, expiryShard = :shard, expiresAt = :ttl'
                : 'REMOVE connectionId, outboundTopicAliases',
              ConditionExpression: 'connectionId = :c',
              ExpressionAttributeValues: { ':c': connectionId, ...expiry },
            }),
      ),
    );
  }

  async sessionsExpired(now: number): Promise<string[]> {
    return dueSessionIds(
      this.database,
      'bySessionExpiry',
      'expiryShard',
      'sessionExpiresAt',
      expiryShards,
      now,
    );
  }

  async deleteExpiredSession(clientId: string, now: number): Promise<boolean> {
    const { db, tables } = this.database;
    return ifConditionHolds(
      db.send(
        new DeleteCommand({
          TableName: tables.Sessions,
          Key: { clientId },
          // A will still waiting is published first: it is due by the session's end at the latest.
          ConditionExpression:
            'attribute_not_exists(connectionId) AND sessionExpiresAt <= :now AND attribute_not_exists(pendingWill)',
          ExpressionAttributeValues: { ':now': now },
        }),
      ),
    );
  }
}

function connectionItem(connection: ConnectionRecord): Record<string, unknown> {
  return {
    ...connection,
    ...(connection.keepAliveDue === undefined
      ? {}
      : { keepAliveShard: keepAliveShard(connection.connectionId) }),
    expiresAt: epochSeconds(connection.connectedAt) + connectionTtlSeconds,
  };
}

/**
 * Partitions of the deadline index. Deadlines rise with time, so one partition
 * would take every deadline write; an index partition takes 1,000 writes a
 * second and moving a deadline costs two. 64 take 32,000 moves a second
 * (100,000 connections at keep-alive 5 s move 20,000), and an empty check
 * costs 64 half-unit queries (docs/adr/0015-keep-alive-deadlines.md).
 */
const keepAliveShards = 64;

/** The connection's shard of the deadline index. */
function keepAliveShard(connectionId: string): string {
  return String(shardOf(connectionId, keepAliveShards));
}
