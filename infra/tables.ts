import type { RemovalPolicy } from 'aws-cdk-lib';
import {
  AttributeType,
  Billing,
  type ITableV2,
  ProjectionType,
  StreamViewType,
  TableV2,
} from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { Construct } from 'constructs';
import type { BrokerFunctionId } from '../shared/function-environment.js';
import {
  type KeyDefinition,
  type TableDefinition,
  type TableId,
  tableDefinitions,
  usersTable,
} from '../shared/tables.js';

/** The broker's tables, by table id. */
export type BrokerTables = Readonly<Record<TableId, TableV2>>;

export interface BrokerTablesProps {
  /** What happens to the tables when the stack is deleted (the broker's `removalPolicy`). */
  readonly removalPolicy: RemovalPolicy;
}

/**
 * One on-demand table per definition in `shared/tables.ts`, with point-in-time recovery. The tables
 * are children of `scope` itself (ids `<TableId>Table`), so their logical ids do not depend on this
 * module.
 *
 * @example
 * const tables = createBrokerTables(this, { removalPolicy: RemovalPolicy.DESTROY });
 * tables.Messages.tableName;
 */
export function createBrokerTables(scope: Construct, props: BrokerTablesProps): BrokerTables {
  const entries = tableDefinitions.map(
    (definition) => [definition.id, tableFrom(scope, definition, props)] as const,
  );
  return Object.fromEntries(entries) as Record<TableId, TableV2>;
}

/**
 * The users table (`usersTable` in shared/tables.ts), id `UsersTable`: on demand, with point-in-time
 * recovery, since it holds the only copy of the users' password hashes.
 *
 * @example
 * createUsersTable(this, { removalPolicy: RemovalPolicy.RETAIN }).grantReadData(message);
 */
export function createUsersTable(scope: Construct, props: BrokerTablesProps): TableV2 {
  return tableFrom(scope, usersTable, props);
}

function tableFrom(scope: Construct, definition: TableDefinition<string>, props: BrokerTablesProps): TableV2 {
  const attribute = (key: KeyDefinition) => ({
    name: key.name,
    type: key.type === 'S' ? AttributeType.STRING : AttributeType.NUMBER,
  });
  return new TableV2(scope, `${definition.id}Table`, {
    partitionKey: attribute(definition.partitionKey),
    sortKey: definition.sortKey && attribute(definition.sortKey),
    globalSecondaryIndexes: definition.globalIndexes.map((index) => ({
      indexName: index.indexName,
      partitionKey: attribute(index.partitionKey),
      sortKey: index.sortKey && attribute(index.sortKey),
      projectionType: index.projection === 'ALL' ? ProjectionType.ALL : ProjectionType.KEYS_ONLY,
    })),
    billing: Billing.onDemand(),
    timeToLiveAttribute: definition.timeToLiveAttribute,
    dynamoStream: definition.stream === 'NEW_IMAGE' ? StreamViewType.NEW_IMAGE : undefined,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    removalPolicy: props.removalPolicy,
  });
}

/** The one table whose stream feeds the fan-out. */
export function streamedTable(tables: BrokerTables): ITableV2 {
  const streamed = tableDefinitions.filter((t) => t.stream);
  if (streamed.length !== 1) {
    throw new Error(`Expected exactly one streamed table in shared/tables.ts, found ${streamed.length}`);
  }
  return tables[streamed[0].id];
}

/** Least privilege per function; the access matrix in test/infra.test.ts holds it to this. */
export function grantBrokerTableAccess(
  tables: BrokerTables,
  functions: Readonly<Record<BrokerFunctionId, IFunction>>,
): void {
  const { Connections, Sessions, Subscriptions, Messages, Deliveries, Retained, LoginAttempts } = tables;
  const { message, fanout, sweeper } = functions;
  // connect: no table access; it only checks the subprotocol.
  for (const table of Object.values(tables)) table.grantReadWriteData(message);
  // A connection that is gone (a 410 in the fan-out, the sweep's keep-alive check):
  // read and delete its record, end its session, drop a clean session's subscriptions and
  // deliveries, publish its will (the message, the retained store, a QoS 2 marker).
  for (const fn of [fanout, sweeper]) {
    for (const table of [Connections, Sessions, Subscriptions, Deliveries]) table.grantReadWriteData(fn);
    Messages.grantWriteData(fn);
    Retained.grantWriteData(fn);
  }
  // The fan-out also reads subscriptions and sessions, takes packet ids from Sessions and queues
  // deliveries: covered above. It adds each batch's traffic to the `$SYS/` counts (and a gone
  // connection leaves its user's connection set); the sweeper reads those counts and the retained
  // `$SYS/` figures it last published (docs/adr/0022).
  LoginAttempts.grantWriteData(fanout);
  LoginAttempts.grantReadData(sweeper);
  Retained.grantReadData(sweeper);
  // A topic's subscriptions are read with one PartiQL SELECT (docs/adr/0029), which the table grants
  // above do not cover: the fan-out for every message, all three when a gone session hands its
  // Shared Subscription messages on.
  for (const fn of [message, fanout, sweeper]) {
    fn.addToRolePolicy(
      new PolicyStatement({ actions: ['dynamodb:PartiQLSelect'], resources: [Subscriptions.tableArn] }),
    );
  }
}
