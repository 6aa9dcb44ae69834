/**
 * The one source of the broker's DynamoDB tables. The CDK construct and the
 * emulator both build their tables from these definitions, so what runs on a
 * laptop is what runs in AWS.
 *
 * Keys are plain strings (`S`) everywhere: every identifier the broker keys on
 * (connection id, client id, topic anchor) is text.
 */

export interface KeyDefinition {
  readonly name: string;
  readonly type: 'S' | 'N';
}

export interface IndexDefinition {
  readonly indexName: string;
  readonly partitionKey: KeyDefinition;
  readonly sortKey?: KeyDefinition;
  /** KEYS_ONLY indexes carry the table keys and nothing else. */
  readonly projection: 'KEYS_ONLY' | 'ALL';
}

export interface TableDefinition<Id extends string = TableId> {
  /** Logical name: the CDK construct id and the emulator's table name suffix. */
  readonly id: Id;
  readonly partitionKey: KeyDefinition;
  readonly sortKey?: KeyDefinition;
  readonly globalIndexes: readonly IndexDefinition[];
  /** Attribute holding an epoch-seconds expiry, if items expire. */
  readonly timeToLiveAttribute?: string;
  /** Stream view, for the table whose stream feeds the fan-out. */
  readonly stream?: 'NEW_IMAGE';
  /** Environment variable through which functions learn the table's name. */
  readonly envVar: string;
}

export type TableId =
  | 'Connections'
  | 'Sessions'
  | 'Subscriptions'
  | 'Messages'
  | 'Deliveries'
  | 'Retained'
  | 'LoginAttempts';

const str = (name: string): KeyDefinition => ({ name, type: 'S' });

/**
 * One item per live WebSocket connection, keyed by the gateway's connection id.
 * `byKeepAliveDue` lists connections by keep-alive deadline, spread over a few
 * shards so deadline writes share no hot partition (docs/adr/0015-keep-alive-deadlines.md);
 * keep-alive 0 connections have no deadline and are not in it.
 */
export const connectionsTable: TableDefinition = {
  id: 'Connections',
  partitionKey: str('connectionId'),
  globalIndexes: [
    {
      indexName: 'byKeepAliveDue',
      partitionKey: str('keepAliveShard'),
      sortKey: { name: 'keepAliveDue', type: 'N' },
      projection: 'KEYS_ONLY',
    },
  ],
  timeToLiveAttribute: 'expiresAt',
  envVar: 'NIMBUS_CONNECTIONS_TABLE',
};

/**
 * One item per MQTT client id: where the client is connected now, and its session generation.
 * `bySessionExpiry` lists offline sessions by expiry (docs/adr/0018-session-expiry.md);
 * `byWillDue` lists wills waiting for their delay (docs/adr/0021-flow-control-server-keep-alive-will-delay.md).
 */
export const sessionsTable: TableDefinition = {
  id: 'Sessions',
  partitionKey: str('clientId'),
  globalIndexes: [
    {
      // Sparse: only offline sessions with a finite expiry carry `expiryShard`, so the sweep reads only those.
      indexName: 'bySessionExpiry',
      partitionKey: str('expiryShard'),
      sortKey: { name: 'sessionExpiresAt', type: 'N' },
      projection: 'KEYS_ONLY',
    },
    {
      // Sparse: only sessions holding a will that waits for its Will Delay Interval carry `willShard`.
      indexName: 'byWillDue',
      partitionKey: str('willShard'),
      sortKey: { name: 'willDueAt', type: 'N' },
      projection: 'KEYS_ONLY',
    },
  ],
  timeToLiveAttribute: 'expiresAt',
  envVar: 'NIMBUS_SESSIONS_TABLE',
};

/**
 * Subscriptions keyed by the filter's anchor (its literal levels before the
 * first wildcard), so a publish reads only the partitions of its own topic's
 * prefixes. See docs/adr/0002-subscription-keys.md.
 */
export const subscriptionsTable: TableDefinition = {
  id: 'Subscriptions',
  partitionKey: str('anchor'),
  sortKey: str('filterClient'),
  globalIndexes: [
    {
      indexName: 'byClient',
      partitionKey: str('clientId'),
      sortKey: str('filter'),
      projection: 'KEYS_ONLY',
    },
  ],
  envVar: 'NIMBUS_SUBSCRIPTIONS_TABLE',
};

/**
 * Every accepted PUBLISH, keyed by publisher so the stream keeps one
 * publisher's messages in order. Items expire after the stream has carried
 * them; the stream is the only path from publisher to subscribers.
 */
export const messagesTable: TableDefinition = {
  id: 'Messages',
  partitionKey: str('publisher'),
  sortKey: str('messageId'),
  globalIndexes: [],
  timeToLiveAttribute: 'expiresAt',
  stream: 'NEW_IMAGE',
  envVar: 'NIMBUS_MESSAGES_TABLE',
};

/**
 * Per-session packet state, keyed by client id: QoS 1/2 messages queued for
 * or in flight to the client (`out#<packet id>`), inbound QoS 2 packet ids
 * awaiting PUBREL (`in#<packet id>`), and exactly-once markers for QoS 2
 * deliveries (`qos2#<message>`). Survives reconnects; expires with the session.
 */
export const deliveriesTable: TableDefinition = {
  id: 'Deliveries',
  partitionKey: str('clientId'),
  sortKey: str('entry'),
  globalIndexes: [],
  timeToLiveAttribute: 'expiresAt',
  envVar: 'NIMBUS_DELIVERIES_TABLE',
};

/** Retained messages: partitioned by the topic's first level, sorted by topic. */
export const retainedTable: TableDefinition = {
  id: 'Retained',
  partitionKey: str('root'),
  sortKey: str('topic'),
  globalIndexes: [],
  // Set only on messages with a Message Expiry Interval [MQTT-3.3.2-5].
  timeToLiveAttribute: 'expiresAt',
  envVar: 'NIMBUS_RETAINED_TABLE',
};

/**
 * Failed-login counters, one item per user name (`user#…`) or source address (`ip#…`), shared by
 * every message function instance; TTL forgets them once their window and block have passed
 * (shared/login-throttle.ts, docs/adr/0008-authorization.md). Also each authenticated user's live
 * connection ids (`connections#…`, no expiry), for the connections-per-user quota (ADR 0016).
 */
export const loginAttemptsTable: TableDefinition = {
  id: 'LoginAttempts',
  partitionKey: str('key'),
  globalIndexes: [],
  timeToLiveAttribute: 'expiresAt',
  envVar: 'NIMBUS_LOGIN_ATTEMPTS_TABLE',
};

export const tableDefinitions: readonly TableDefinition[] = [
  connectionsTable,
  sessionsTable,
  subscriptionsTable,
  messagesTable,
  deliveriesTable,
  retainedTable,
  loginAttemptsTable,
];

/**
 * Users who may connect with a user name and password, for user bases too large for the message
 * function's environment: one item per user, `{ username, passwordHash: '$7$…', updatedAt }`
 * (shared/auth/dynamo-user-directory.ts). Not one of the broker's own tables: it exists only when
 * authentication uses it, and only the message function reads it.
 */
export const usersTable: TableDefinition<'Users'> = {
  id: 'Users',
  partitionKey: str('username'),
  globalIndexes: [],
  envVar: 'NIMBUS_USERS_TABLE',
};
