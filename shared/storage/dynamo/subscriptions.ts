import { DeleteCommand, ExecuteStatementCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { BrokerStore, QoS, SubscriptionRecord } from '../../ports.js';
import { matchingFilter, topicAnchors, topicMatches } from '../../topics.js';
import { subscriptionKey } from '../keys.js';
import { ifConditionHolds } from './conditions.js';
import type { Database } from './database.js';
import { batchWrite, type Item, queryAll, queryPages } from './paging.js';

type SubscriptionsPort = Pick<
  BrokerStore,
  | 'putSubscriptions'
  | 'deleteSubscriptions'
  | 'deleteStaleSubscriptions'
  | 'subscribedFilters'
  | 'subscriptionsMatching'
  | 'subscriptionsMatchingEach'
>;

const optionNames = ['noLocal', 'retainAsPublished', 'subscriptionIdentifier'] as const;

/** The MQTT 5 options a subscription sets; unset ones are not stored (most subscriptions have none). */
function optionAttributes(s: SubscriptionRecord): Record<string, boolean | number> {
  return Object.fromEntries(
    optionNames.flatMap((name) => (s[name] === undefined || s[name] === false ? [] : [[name, s[name]]])),
  );
}

/**
 * The Subscriptions table, keyed by each filter's anchor so a publish reads
 * only the partitions of its own topic's prefixes (docs/adr/0002-subscription-keys.md).
 *
 * @example
 * const part = new Subscriptions({ db, tables, now: Date.now });
 * await part.subscriptionsMatching('home/kitchen/temp');
 */
export class Subscriptions implements SubscriptionsPort {
  constructor(private readonly database: Database) {}

  async putSubscriptions(subscriptions: readonly SubscriptionRecord[]): Promise<string[]> {
    const { db, tables, now } = this.database;
    const created = await Promise.all(
      subscriptions.map(async (s) => {
        const key = subscriptionKey(s.filter, s.clientId);
        const options = optionAttributes(s);
        const absent = optionNames.filter((name) => !(name in options));
        // Re-subscribing in the same session replaces QoS and options but keeps the original time [MQTT-3.8.4-3].
        let previous: Record<string, unknown> | undefined;
        const updated = await ifConditionHolds(
          db
            .send(
              new UpdateCommand({
                TableName: tables.Subscriptions,
                Key: key,
                UpdateExpression: [
                  `SET clientId = :c, sessionId = :s, #filter = :f, qos = :q, subscribedAt = if_not_exists(subscribedAt, :t)${Object.keys(
                    options,
                  )
                    .map((name) => `, ${name} = :${name}`)
                    .join('')}`,
                  absent.length > 0 ? `REMOVE ${absent.join(', ')}` : '',
                ].join(' '),
                ConditionExpression: 'attribute_not_exists(anchor) OR sessionId = :s',
                ExpressionAttributeNames: { '#filter': 'filter' },
                ExpressionAttributeValues: {
                  ':c': s.clientId,
                  ':s': s.sessionId,
                  ':f': s.filter,
                  ':q': s.qos,
                  ':t': s.subscribedAt ?? now(),
                  ...Object.fromEntries(Object.entries(options).map(([name, value]) => [`:${name}`, value])),
                },
                // The old key tells a new subscription from a re-subscription, at no extra read.
                ReturnValues: 'UPDATED_OLD',
              }),
            )
            .then((output) => {
              previous = output.Attributes;
            }),
        );
        if (updated) return previous?.sessionId === undefined ? s.filter : undefined;
        // A leftover of an older session: this one starts afresh.
        await db.send(
          new PutCommand({
            TableName: tables.Subscriptions,
            Item: {
              ...key,
              clientId: s.clientId,
              sessionId: s.sessionId,
              filter: s.filter,
              qos: s.qos,
              subscribedAt: s.subscribedAt ?? now(),
              ...options,
            },
          }),
        );
        return s.filter;
      }),
    );
    return created.filter((filter) => filter !== undefined);
  }

  async deleteSubscriptions(clientId: string, filters: readonly string[]): Promise<void> {
    const { db, tables } = this.database;
    await batchWrite(
      db,
      tables.Subscriptions,
      filters.map((filter) => ({ DeleteRequest: { Key: subscriptionKey(filter, clientId) } })),
    );
  }

  async deleteStaleSubscriptions(clientId: string, keepSessionId?: string): Promise<void> {
    const { db, tables } = this.database;
    const pages = queryPages(db, {
      TableName: tables.Subscriptions,
      IndexName: 'byClient',
      KeyConditionExpression: 'clientId = :c',
      ExpressionAttributeValues: { ':c': clientId },
    });
    for await (const keys of pages) {
      for (const key of keys) {
        // False when the subscription is the kept session's, or already gone.
        await ifConditionHolds(
          db.send(
            new DeleteCommand({
              TableName: tables.Subscriptions,
              Key: { anchor: key.anchor, filterClient: key.filterClient },
              // The index is eventually consistent: never delete what the current session just subscribed.
              ...(keepSessionId
                ? {
                    ConditionExpression: 'sessionId <> :keep',
                    ExpressionAttributeValues: { ':keep': keepSessionId },
                  }
                : {}),
            }),
          ),
        );
      }
    }
  }

  async subscribedFilters(clientId: string): Promise<string[]> {
    const { db, tables } = this.database;
    const items = await queryAll(db, {
      TableName: tables.Subscriptions,
      IndexName: 'byClient',
      KeyConditionExpression: 'clientId = :c',
      ExpressionAttributeNames: { '#filter': 'filter' },
      ExpressionAttributeValues: { ':c': clientId },
      ProjectionExpression: '#filter',
    });
    return items.map((item) => String(item.filter));
  }

  async subscriptionsMatching(topic: string): Promise<SubscriptionRecord[]> {
    return (await this.subscriptionsMatchingEach([topic])).get(topic) ?? [];
  }

  async subscriptionsMatchingEach(topics: readonly string[]): Promise<Map<string, SubscriptionRecord[]>> {
    // Each anchor once, however many of the topics share it; every read is consistent and starts
    // now, after the messages were stored, so none misses a subscription acknowledged before them.
    const anchors = [...new Set(topics.flatMap(topicAnchors))];
    const chunks = Array.from({ length: Math.ceil(anchors.length / anchorsPerStatement) }, (_, i) =>
      anchors.slice(i * anchorsPerStatement, (i + 1) * anchorsPerStatement),
    );
    const items = (await Promise.all(chunks.map((chunk) => this.selectAnchors(chunk)))).flat();
    const byAnchor = new Map<string, SubscriptionRecord[]>();
    for (const item of items) {
      const anchor = String(item.anchor);
      const stored = byAnchor.get(anchor);
      if (stored) stored.push(subscriptionOf(item));
      else byAnchor.set(anchor, [subscriptionOf(item)]);
    }
    return new Map(
      topics.map((topic) => [
        topic,
        topicAnchors(topic)
          .flatMap((anchor) => byAnchor.get(anchor) ?? [])
          .filter((s) => topicMatches(matchingFilter(s.filter), topic)),
      ]),
    );
  }

  /**
   * The subscriptions stored under these anchors: one PartiQL SELECT with the anchors in an IN list
   * reads all their partitions in one request (a publish to `a/b/c` reads four), where a Query
   * reads one partition a request, and each request costs the function as much CPU as DynamoDB's work.
   */
  private async selectAnchors(anchors: readonly string[]): Promise<Item[]> {
    const { db, tables } = this.database;
    const Statement = `SELECT * FROM "${tables.Subscriptions}" WHERE anchor IN [${anchors.map(() => '?').join(', ')}]`;
    const items: Item[] = [];
    let NextToken: string | undefined;
    do {
      const page = await db.send(
        new ExecuteStatementCommand({ Statement, Parameters: [...anchors], ConsistentRead: true, NextToken }),
      );
      items.push(...((page.Items ?? []) as Item[]));
      NextToken = page.NextToken;
    } while (NextToken);
    return items;
  }
}

/** Partition keys one PartiQL statement may list in an IN condition. */
const anchorsPerStatement = 50;

function subscriptionOf(item: Item): SubscriptionRecord {
  return {
    clientId: String(item.clientId),
    sessionId: String(item.sessionId),
    filter: String(item.filter),
    qos: item.qos as QoS,
    subscribedAt: item.subscribedAt === undefined ? undefined : Number(item.subscribedAt),
    ...(item.noLocal === true ? { noLocal: true } : {}),
    ...(item.retainAsPublished === true ? { retainAsPublished: true } : {}),
    ...(item.subscriptionIdentifier === undefined
      ? {}
      : { subscriptionIdentifier: Number(item.subscriptionIdentifier) }),
  };
}
