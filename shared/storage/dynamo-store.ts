import {
  ConditionalCheckFailedException,
  DynamoDBClient,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  BatchWriteCommand,
  type BatchWriteCommandOutput,
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
  ScanCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { BrokerConfig } from '../config.js';
import type {
  ApplicationMessage,
  BrokerStore,
  ConnectionRecord,
  OutboundMessage,
  QoS,
  RetainedMessage,
  SessionRecord,
  StoredMessage,
  SubscriptionRecord,
} from '../ports.js';
import type { TableId } from '../tables.js';
import { filterAnchor, topicAnchors, topicMatches } from '../topics.js';

/** Connections outlive API Gateway's 2-hour cap by an hour, then TTL removes rows whose $disconnect never came. */
const connectionTtlSeconds = 3 * 3600;
/** Messages only need to outlive the stream's 24-hour retention. */
const messageTtlSeconds = 24 * 3600;
const epochSeconds = (ms: number) => Math.floor(ms / 1000);
// MQTT's NUL-free strings [MQTT-1.5.3-2] make U+0000 a safe separator inside a sort key.
const filterClientKey = (filter: string, clientId: string) => `${filter}\u0000${clientId}`;
/** Per-session packet state outlives a client that never comes back by a week, then TTL removes it. */
const deliveryTtlSeconds = 7 * 24 * 3600;
// Zero-padded so entries sort by packet id; the `seq` attribute keeps queuing order across wraps.
const outboundEntry = (packetId: number) => `out#${String(packetId).padStart(5, '0')}`;
const inboundEntry = (packetId: number) => `in#${String(packetId).padStart(5, '0')}`;
const qos2PacketEntry = (packetId: number) => `qos2id#${String(packetId).padStart(5, '0')}`;
// The first topic level, marked so an empty level ('/a') is still a valid key.
const retainedRoot = (topicOrFilter: string) => `r|${topicOrFilter.split('/')[0]}`;

function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

function isConditionFailure(error: unknown): boolean {
  return (
    error instanceof ConditionalCheckFailedException ||
    (error as Error).name === 'ConditionalCheckFailedException'
  );
}

/** The SDK client functions share per module instance, so connections are reused across invocations. */
export function createDocumentClient(config: Pick<BrokerConfig, 'dynamoEndpoint'>): DynamoDBDocumentClient {
  const client = new DynamoDBClient(config.dynamoEndpoint ? { endpoint: config.dynamoEndpoint } : {});
  return DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
}

/**
 * The broker's state in DynamoDB.
 *
 * @example
 * const store = new DynamoStore(createDocumentClient(config), config.tables, { now: Date.now });
 * await store.subscriptionsMatching('home/kitchen/temp');
 */
export class DynamoStore implements BrokerStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tables: Readonly<Record<TableId, string>>,
    private readonly options: { readonly now: () => number },
  ) {}

  async getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tables.Connections, Key: { connectionId }, ConsistentRead: true }),
    );
    return Item as ConnectionRecord | undefined;
  }

  async putConnection(connection: ConnectionRecord): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.tables.Connections,
        Item: { ...connection, expiresAt: epochSeconds(connection.connectedAt) + connectionTtlSeconds },
      }),
    );
  }

  async deleteConnection(connectionId: string): Promise<void> {
    await this.db.send(new DeleteCommand({ TableName: this.tables.Connections, Key: { connectionId } }));
  }

  async claimConnection(connection: ConnectionRecord): Promise<boolean> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tables.Connections,
          Item: { ...connection, expiresAt: epochSeconds(connection.connectedAt) + connectionTtlSeconds },
          ConditionExpression: 'attribute_not_exists(connectionId)',
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async getSession(clientId: string): Promise<SessionRecord | undefined> {
    const { Item } = await this.db.send(
      new GetCommand({ TableName: this.tables.Sessions, Key: { clientId }, ConsistentRead: true }),
    );
    return Item as SessionRecord | undefined;
  }

  async replaceSession(next: SessionRecord, previous: SessionRecord | undefined): Promise<boolean> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tables.Sessions,
          Key: { clientId: next.clientId },
          UpdateExpression:
            'SET sessionId = :s, connectionId = :c, protocolVersion = :v, cleanSession = :clean',
          // Two CONNECTs racing for one client id: the loser re-reads and so sees the winner to take over from.
          ConditionExpression: previous
            ? 'sessionId = :previousSession AND (attribute_not_exists(connectionId) OR connectionId = :previousConnection)'
            : 'attribute_not_exists(clientId)',
          ExpressionAttributeValues: {
            ':s': next.sessionId,
            ':c': next.connectionId,
            ':v': next.protocolVersion,
            ':clean': next.cleanSession,
            ...(previous
              ? { ':previousSession': previous.sessionId, ':previousConnection': previous.connectionId ?? '' }
              : {}),
          },
        }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async getSessions(clientIds: readonly string[]): Promise<Map<string, SessionRecord>> {
    const sessions = new Map<string, SessionRecord>();
    for (const ids of chunk([...new Set(clientIds)], 100)) {
      let keys: Record<string, unknown>[] | undefined = ids.map((clientId) => ({ clientId }));
      while (keys && keys.length > 0) {
        const result: BatchGetCommandOutput = await this.db.send(
          new BatchGetCommand({
            RequestItems: { [this.tables.Sessions]: { Keys: keys, ConsistentRead: true } },
          }),
        );
        for (const item of result.Responses?.[this.tables.Sessions] ?? []) {
          sessions.set(item.clientId as string, item as SessionRecord);
        }
        keys = result.UnprocessedKeys?.[this.tables.Sessions]?.Keys;
      }
    }
    return sessions;
  }

  async endSession(clientId: string, connectionId: string, cleanSession: boolean): Promise<boolean> {
    const condition = {
      ConditionExpression: 'connectionId = :c',
      ExpressionAttributeValues: { ':c': connectionId },
    };
    try {
      await this.db.send(
        cleanSession
          ? new DeleteCommand({ TableName: this.tables.Sessions, Key: { clientId }, ...condition })
          : new UpdateCommand({
              TableName: this.tables.Sessions,
              Key: { clientId },
              UpdateExpression: 'REMOVE connectionId',
              ...condition,
            }),
      );
      return true;
    } catch (error) {
      if (isConditionFailure(error)) return false;
      throw error;
    }
  }

  async putSubscriptions(subscriptions: readonly SubscriptionRecord[]): Promise<void> {
    await Promise.all(
      subscriptions.map(async (s) => {
        const key = { anchor: filterAnchor(s.filter), filterClient: filterClientKey(s.filter, s.clientId) };
        try {
          // Re-subscribing in the same session replaces the QoS but keeps the original time [MQTT-3.8.4-3].
          await this.db.send(
            new UpdateCommand({
              TableName: this.tables.Subscriptions,
              Key: key,
              UpdateExpression:
                'SET clientId = :c, sessionId = :s, #filter = :f, qos = :q, subscribedAt = if_not_exists(subscribedAt, :t)',
              ConditionExpression: 'attribute_not_exists(anchor) OR sessionId = :s',
              ExpressionAttributeNames: { '#filter': 'filter' },
              ExpressionAttributeValues: {
                ':c': s.clientId,
                ':s': s.sessionId,
                ':f': s.filter,
                ':q': s.qos,
                ':t': s.subscribedAt ?? this.options.now(),
              },
            }),
          );
        } catch (error) {
          if (!isConditionFailure(error)) throw error;
          // A leftover of an older session: this one starts afresh.
          await this.db.send(
            new PutCommand({ TableName: this.tables.Subscriptions, Item: { ...key, ...s } }),
          );
        }
      }),
    );
  }

  async deleteSubscriptions(clientId: string, filters: readonly string[]): Promise<void> {
    await this.batchWrite(
      this.tables.Subscriptions,
      filters.map((filter) => ({
        DeleteRequest: {
          Key: { anchor: filterAnchor(filter), filterClient: filterClientKey(filter, clientId) },
        },
      })),
    );
  }

  async deleteStaleSubscriptions(clientId: string, keepSessionId?: string): Promise<void> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tables.Subscriptions,
          IndexName: 'byClient',
          KeyConditionExpression: 'clientId = :c',
          ExpressionAttributeValues: { ':c': clientId },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const key of page.Items ?? []) {
        try {
          await this.db.send(
            new DeleteCommand({
              TableName: this.tables.Subscriptions,
              Key: { anchor: key.anchor, filterClient: key.filterClient },
              // The index is eventually consistent: never delete what the current session just subscribed.
              ...(keepSessionId
                ? {
                    ConditionExpression: 'sessionId <> :keep',
                    ExpressionAttributeValues: { ':keep': keepSessionId },
                  }
                : {}),
            }),
          );
        } catch (error) {
          if (!isConditionFailure(error)) throw error;
        }
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  async subscriptionsMatching(topic: string): Promise<SubscriptionRecord[]> {
    const pages = await Promise.all(topicAnchors(topic).map((anchor) => this.queryAnchor(anchor)));
    return pages.flat().filter((s) => topicMatches(s.filter, topic));
  }

  private async queryAnchor(anchor: string): Promise<SubscriptionRecord[]> {
    const items = await this.queryAll({
      TableName: this.tables.Subscriptions,
      KeyConditionExpression: 'anchor = :a',
      ExpressionAttributeValues: { ':a': anchor },
      ConsistentRead: true,
    });
    return items.map((item) => ({
      clientId: String(item.clientId),
      sessionId: String(item.sessionId),
      filter: String(item.filter),
      qos: item.qos as QoS,
      subscribedAt: item.subscribedAt === undefined ? undefined : Number(item.subscribedAt),
    }));
  }

  async putMessage(message: StoredMessage): Promise<void> {
    await this.db.send(new PutCommand({ TableName: this.tables.Messages, Item: this.messageItem(message) }));
  }

  async putQoS2Message(message: StoredMessage, packetId: number): Promise<boolean> {
    try {
      await this.db.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Put: {
                TableName: this.tables.Deliveries,
                Item: {
                  clientId: message.publisher,
                  entry: inboundEntry(packetId),
                  expiresAt: epochSeconds(message.publishedAt) + deliveryTtlSeconds,
                },
                ConditionExpression: 'attribute_not_exists(entry)',
              },
            },
            { Put: { TableName: this.tables.Messages, Item: this.messageItem(message) } },
          ],
        }),
      );
      return true;
    } catch (error) {
      if (
        error instanceof TransactionCanceledException ||
        (error as Error).name === 'TransactionCanceledException'
      ) {
        const reasons = (error as TransactionCanceledException).CancellationReasons ?? [];
        if (reasons[0]?.Code === 'ConditionalCheckFailed') return false;
      }
      throw error;
    }
  }

  async releaseInboundPacketId(clientId: string, packetId: number): Promise<void> {
    await this.db.send(
      new DeleteCommand({
        TableName: this.tables.Deliveries,
        Key: { clientId, entry: inboundEntry(packetId) },
      }),
    );
  }

  async reservePacketId(clientId: string): Promise<{ packetId: number; seq: number }> {
    const { Attributes } = await this.db.send(
      new UpdateCommand({
        TableName: this.tables.Sessions,
        Key: { clientId },
        UpdateExpression: 'ADD nextPacketId :one',
        ConditionExpression: 'attribute_exists(clientId)',
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const seq = Number(Attributes?.nextPacketId);
    // Packet identifiers are 1..65535 [MQTT-2.3.1-1]; the counter wraps through them.
    return { packetId: ((seq - 1) % 65_535) + 1, seq };
  }

  async claimQoS2Delivery(
    clientId: string,
    messageKey: string,
  ): Promise<{ packetId: number; seq: number; first: boolean; received: boolean }> {
    const marker = { clientId, entry: `qos2#${messageKey}` };
    const reserved = await this.reservePacketId(clientId);
    const expiresAt = epochSeconds(this.options.now()) + deliveryTtlSeconds;
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tables.Deliveries,
          Item: { ...marker, ...reserved, expiresAt },
          ConditionExpression: 'attribute_not_exists(entry)',
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      const { Item } = await this.db.send(
        new GetCommand({ TableName: this.tables.Deliveries, Key: marker, ConsistentRead: true }),
      );
      return {
        packetId: Number(Item?.packetId),
        seq: Number(Item?.seq),
        first: false,
        received: Boolean(Item?.received),
      };
    }
    // PUBREC names only the packet id: this entry leads from it back to the marker.
    await this.db.send(
      new PutCommand({
        TableName: this.tables.Deliveries,
        Item: { clientId, entry: qos2PacketEntry(reserved.packetId), messageKey, expiresAt },
      }),
    );
    return { ...reserved, first: true, received: false };
  }

  async markQoS2Received(clientId: string, packetId: number): Promise<void> {
    const { Item } = await this.db.send(
      new GetCommand({
        TableName: this.tables.Deliveries,
        Key: { clientId, entry: qos2PacketEntry(packetId) },
        ConsistentRead: true,
      }),
    );
    if (!Item) return;
    await this.db
      .send(
        new UpdateCommand({
          TableName: this.tables.Deliveries,
          Key: { clientId, entry: `qos2#${Item.messageKey}` },
          UpdateExpression: 'SET received = :yes',
          ConditionExpression: 'attribute_exists(entry)',
          ExpressionAttributeValues: { ':yes': true },
        }),
      )
      .catch((error: unknown) => {
        if (!isConditionFailure(error)) throw error;
      });
  }

  async putOutbound(clientId: string, message: OutboundMessage, maxQueued: number): Promise<boolean> {
    const key = { clientId, entry: outboundEntry(message.packetId) };
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.tables.Deliveries,
          Item: { ...key, ...message, expiresAt: epochSeconds(this.options.now()) + deliveryTtlSeconds },
          ConditionExpression: 'attribute_not_exists(entry)',
        }),
      );
    } catch (error) {
      if (isConditionFailure(error)) return true; // a retried fan-out: already queued
      throw error;
    }
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tables.Sessions,
          Key: { clientId },
          UpdateExpression: 'ADD queued :one',
          ConditionExpression: 'attribute_not_exists(queued) OR queued < :max',
          ExpressionAttributeValues: { ':one': 1, ':max': maxQueued },
        }),
      );
      return true;
    } catch (error) {
      if (!isConditionFailure(error)) throw error;
      await this.db.send(new DeleteCommand({ TableName: this.tables.Deliveries, Key: key }));
      return false;
    }
  }

  async deleteOutbound(clientId: string, packetId: number): Promise<void> {
    const { Attributes } = await this.db.send(
      new DeleteCommand({
        TableName: this.tables.Deliveries,
        Key: { clientId, entry: outboundEntry(packetId) },
        ReturnValues: 'ALL_OLD',
      }),
    );
    if (!Attributes) return; // a repeated acknowledgement
    await this.db
      .send(
        new UpdateCommand({
          TableName: this.tables.Sessions,
          Key: { clientId },
          UpdateExpression: 'ADD queued :minus',
          ConditionExpression: 'attribute_exists(clientId)',
          ExpressionAttributeValues: { ':minus': -1 },
        }),
      )
      .catch((error: unknown) => {
        if (!isConditionFailure(error)) throw error;
      });
  }

  async markOutboundReleased(clientId: string, packetId: number): Promise<void> {
    await this.db
      .send(
        new UpdateCommand({
          TableName: this.tables.Deliveries,
          Key: { clientId, entry: outboundEntry(packetId) },
          UpdateExpression: 'SET released = :yes',
          ConditionExpression: 'attribute_exists(entry)',
          ExpressionAttributeValues: { ':yes': true },
        }),
      )
      .catch((error: unknown) => {
        if (!isConditionFailure(error)) throw error;
      });
  }

  async outboundMessages(clientId: string): Promise<OutboundMessage[]> {
    const items = await this.queryAll({
      TableName: this.tables.Deliveries,
      KeyConditionExpression: 'clientId = :c AND begins_with(entry, :out)',
      ExpressionAttributeValues: { ':c': clientId, ':out': 'out#' },
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
      }))
      .sort((a, b) => a.seq - b.seq);
  }

  async deleteDeliveries(clientId: string): Promise<void> {
    const items = await this.queryAll({
      TableName: this.tables.Deliveries,
      KeyConditionExpression: 'clientId = :c',
      ExpressionAttributeValues: { ':c': clientId },
      ProjectionExpression: 'clientId, entry',
    });
    await this.batchWrite(
      this.tables.Deliveries,
      items.map((item) => ({ DeleteRequest: { Key: { clientId: item.clientId, entry: item.entry } } })),
    );
  }

  async putRetained(message: RetainedMessage): Promise<void> {
    const key = { root: retainedRoot(message.topic), topic: message.topic };
    if (message.payload.length === 0) {
      await this.db.send(new DeleteCommand({ TableName: this.tables.Retained, Key: key }));
    } else {
      await this.db.send(new PutCommand({ TableName: this.tables.Retained, Item: { ...key, ...message } }));
    }
  }

  async retainedMatching(filter: string): Promise<RetainedMessage[]> {
    const first = filter.split('/')[0];
    // A filter with a literal first level reads one partition; one starting with a wildcard reads them all.
    const items =
      first === '+' || first === '#'
        ? await this.scanAll(this.tables.Retained)
        : await this.queryAll({
            TableName: this.tables.Retained,
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
      }));
  }

  async touchConnection(connectionId: string, now: number): Promise<void> {
    await this.updateConnection(connectionId, 'SET lastSeen = :now', { ':now': now });
  }

  async takeWill(connectionId: string): Promise<ApplicationMessage | undefined> {
    try {
      const { Attributes } = await this.db.send(
        new UpdateCommand({
          TableName: this.tables.Connections,
          Key: { connectionId },
          UpdateExpression: 'REMOVE will',
          ConditionExpression: 'attribute_exists(will)',
          ReturnValues: 'UPDATED_OLD',
        }),
      );
      return Attributes?.will as ApplicationMessage | undefined;
    } catch (error) {
      if (isConditionFailure(error)) return undefined; // no will, or another caller took it
      throw error;
    }
  }

  async *scanConnections(): AsyncIterable<ConnectionRecord[]> {
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new ScanCommand({ TableName: this.tables.Connections, ExclusiveStartKey: startKey }),
      );
      yield (page.Items ?? []) as ConnectionRecord[];
      startKey = page.LastEvaluatedKey;
    } while (startKey);
  }

  private async updateConnection(
    connectionId: string,
    expression: string,
    values?: Record<string, unknown>,
  ): Promise<void> {
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.tables.Connections,
          Key: { connectionId },
          UpdateExpression: expression,
          ConditionExpression: 'attribute_exists(connectionId)',
          ExpressionAttributeValues: values,
        }),
      );
    } catch (error) {
      if (!isConditionFailure(error)) throw error; // the connection is already gone
    }
  }

  private async queryAll(input: QueryCommandInput): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(new QueryCommand({ ...input, ExclusiveStartKey: startKey }));
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return items;
  }

  private async scanAll(tableName: string): Promise<Record<string, unknown>[]> {
    const items: Record<string, unknown>[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(new ScanCommand({ TableName: tableName, ExclusiveStartKey: startKey }));
      items.push(...(page.Items ?? []));
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return items;
  }

  private messageItem(message: StoredMessage): Record<string, unknown> {
    return { ...message, expiresAt: epochSeconds(message.publishedAt) + messageTtlSeconds };
  }

  private async batchWrite(tableName: string, requests: Record<string, unknown>[]): Promise<void> {
    for (const group of chunk(requests, 25)) {
      let pending: Record<string, unknown>[] | undefined = group;
      while (pending && pending.length > 0) {
        const result: BatchWriteCommandOutput = await this.db.send(
          new BatchWriteCommand({ RequestItems: { [tableName]: pending } }),
        );
        pending = result.UnprocessedItems?.[tableName];
      }
    }
  }
}
