import { ConditionalCheckFailedException, DynamoDBClient } from '@aws-sdk/client-dynamodb';
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
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { BrokerConfig } from '../config.js';
import type {
  BrokerStore,
  ConnectionRecord,
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
 * const store = new DynamoStore(createDocumentClient(config), config.tables);
 * await store.subscriptionsMatching('home/kitchen/temp');
 */
export class DynamoStore implements BrokerStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly tables: Readonly<Record<TableId, string>>,
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
    await this.batchWrite(
      subscriptions.map((s) => ({
        PutRequest: {
          Item: { ...s, anchor: filterAnchor(s.filter), filterClient: filterClientKey(s.filter, s.clientId) },
        },
      })),
    );
  }

  async deleteSubscriptions(clientId: string, filters: readonly string[]): Promise<void> {
    await this.batchWrite(
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
    const found: SubscriptionRecord[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.tables.Subscriptions,
          KeyConditionExpression: 'anchor = :a',
          ExpressionAttributeValues: { ':a': anchor },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        found.push({
          clientId: item.clientId,
          sessionId: item.sessionId,
          filter: item.filter,
          qos: item.qos,
        });
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return found;
  }

  async putMessage(message: StoredMessage): Promise<void> {
    await this.db.send(
      new PutCommand({
        TableName: this.tables.Messages,
        Item: { ...message, expiresAt: epochSeconds(message.publishedAt) + messageTtlSeconds },
      }),
    );
  }

  async reservePacketIds(clientId: string, count: number): Promise<number[]> {
    const { Attributes } = await this.db.send(
      new UpdateCommand({
        TableName: this.tables.Sessions,
        Key: { clientId },
        UpdateExpression: 'ADD nextPacketId :n',
        ConditionExpression: 'attribute_exists(clientId)',
        ExpressionAttributeValues: { ':n': count },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const last = Number(Attributes?.nextPacketId);
    // Packet identifiers are 1..65535 [MQTT-2.3.1-1]; the counter wraps through them.
    return Array.from({ length: count }, (_, i) => ((last - count + i) % 65_535) + 1);
  }

  private async batchWrite(requests: Record<string, unknown>[]): Promise<void> {
    for (const group of chunk(requests, 25)) {
      let pending: Record<string, unknown>[] | undefined = group;
      while (pending && pending.length > 0) {
        const result: BatchWriteCommandOutput = await this.db.send(
          new BatchWriteCommand({ RequestItems: { [this.tables.Subscriptions]: pending } }),
        );
        pending = result.UnprocessedItems?.[this.tables.Subscriptions];
      }
    }
  }
}
