import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import type { TableDefinition } from '../shared/tables.js';

/** Static credentials: DynamoDB Local ignores them, but the SDK insists on having some. */
export const localCredentials = { accessKeyId: 'nimbus', secretAccessKey: 'nimbus' };
export const localRegion = 'us-east-1';

export interface DynamoDbLocal {
  readonly endpoint: string;
  stop(): Promise<void>;
}

/** Asks the OS for a free loopback port. */
export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? done(address.port) : fail(new Error('no port')),
      );
    });
  });
}

/** Where the npm package `amplify-dynamodb-simulator` keeps AWS's DynamoDB Local jar. */
function emulatorDirectory(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('amplify-dynamodb-simulator/package.json')), 'emulator');
}

function assertJava(): void {
  const probe = spawnSync('java', ['-version'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'Java was not found on PATH: DynamoDB Local needs a Java 17+ runtime. Install one (Debian: `apt-get install openjdk-17-jre-headless`) and try again.',
    );
  }
}

/**
 * The watchdog between the emulator and Java: it runs the command and stops it (SIGTERM, then SIGKILL
 * after 3 s) when its stdin reaches end of file, then exits with the command. Only the emulator holds
 * the other end of that pipe, and the kernel closes it however the emulator ends, `kill -9` included,
 * so DynamoDB Local never outlives it. Node-only by choice: Linux's PR_SET_PDEATHSIG is out of Node's
 * reach without a native addon, `process.on('exit')` does not run on SIGKILL, Java gives no
 * "exit with the parent" option, and a shell wrapper would need job control tricks (a background
 * job's stdin is /dev/null) and no Windows.
 */
const watchdogSource = `
const { spawn } = require('node:child_process');
const [command, ...args] = process.argv.slice(1);
const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
child.once('error', (error) => { console.error(String(error)); process.exit(1); });
child.once('exit', (code) => process.exit(code ?? 1));
const stop = () => { child.kill('SIGTERM'); setTimeout(() => child.kill('SIGKILL'), 3000).unref(); };
process.stdin.once('end', stop).resume();
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, stop);
`;

/**
 * Spawns `command` under {@link watchdogSource}: end the child's stdin (`child.stdin.end()`) to stop it.
 *
 * @example
 * const java = spawnWithWatchdog('java', ['-jar', 'DynamoDBLocal.jar'], dir);
 * java.stdin.end(); // SIGTERM to java; the watchdog exits with it
 */
function spawnWithWatchdog(command: string, args: string[], cwd: string) {
  const child = spawn(process.execPath, ['-e', watchdogSource, '--', command, ...args], {
    cwd,
    stdio: ['pipe', 'pipe', 'pipe'],
    // Its own process group, so a terminal's Ctrl-C reaches only the emulator, which then stops
    // DynamoDB Local last, after the functions that use it. (On Windows this would open a console.)
    detached: process.platform !== 'win32',
  });
  // Ending stdin of a watchdog that is already gone is not an error worth crashing for.
  child.stdin.on('error', () => {});
  return child;
}

/**
 * Starts AWS's DynamoDB Local on a free loopback port and waits until it answers.
 *
 * @example
 * const ddb = await startDynamoDbLocal({ dataDir: '.nimbus/data' });
 * // ... new DynamoDBClient({ endpoint: ddb.endpoint })
 * await ddb.stop();
 */
export async function startDynamoDbLocal(options: { dataDir?: string } = {}): Promise<DynamoDbLocal> {
  assertJava();
  const port = await freePort();
  const storage = options.dataDir ? ['-dbPath', resolve(options.dataDir)] : ['-inMemory'];
  if (options.dataDir) mkdirSync(resolve(options.dataDir), { recursive: true });
  const child = spawnWithWatchdog(
    'java',
    [
      '-Djava.library.path=./DynamoDBLocal_lib',
      '-jar',
      'DynamoDBLocal.jar',
      '-port',
      String(port),
      '-sharedDb',
      '-disableTelemetry',
      ...storage,
    ],
    emulatorDirectory(),
  );
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ endpoint, region: localRegion, credentials: localCredentials });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`DynamoDB Local exited at start-up:\n${output}`);
    try {
      await client.send(new DescribeTableCommand({ TableName: 'nimbus-probe' }));
      break;
    } catch (error) {
      if ((error as Error).name === 'ResourceNotFoundException') break;
      if (Date.now() > deadline) {
        child.stdin.end();
        throw new Error(`DynamoDB Local did not answer within 30 s:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  client.destroy();
  return {
    endpoint,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin.end();
        await exited;
      }
    },
  };
}

/** The CreateTable request for a shared table definition (the CDK construct builds the same table). */
export function createTableInput(
  definition: TableDefinition<string>,
  tableName: string,
): CreateTableCommandInput {
  const keys = [
    definition.partitionKey,
    definition.sortKey,
    ...definition.globalIndexes.flatMap((i) => [i.partitionKey, i.sortKey]),
  ];
  const attributes = new Map(keys.filter((k) => k !== undefined).map((k) => [k.name, k.type]));
  const keySchema = (pk: { name: string }, sk?: { name: string }) => [
    { AttributeName: pk.name, KeyType: 'HASH' as const },
    ...(sk ? [{ AttributeName: sk.name, KeyType: 'RANGE' as const }] : []),
  ];
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [...attributes].map(([AttributeName, AttributeType]) => ({
      AttributeName,
      AttributeType,
    })),
    KeySchema: keySchema(definition.partitionKey, definition.sortKey),
    GlobalSecondaryIndexes:
      definition.globalIndexes.length > 0
        ? definition.globalIndexes.map((index) => ({
            IndexName: index.indexName,
            KeySchema: keySchema(index.partitionKey, index.sortKey),
            Projection: { ProjectionType: index.projection },
          }))
        : undefined,
    StreamSpecification: definition.stream
      ? { StreamEnabled: true, StreamViewType: definition.stream }
      : undefined,
  };
}

/** Creates each table unless it exists (a `--data-dir` keeps them across restarts); returns stream ARNs by table name. */
export async function ensureTables(
  client: DynamoDBClient,
  tables: ReadonlyArray<{ definition: TableDefinition<string>; tableName: string }>,
): Promise<Map<string, string>> {
  const streams = new Map<string, string>();
  for (const { definition, tableName } of tables) {
    try {
      await client.send(new CreateTableCommand(createTableInput(definition, tableName)));
      if (definition.timeToLiveAttribute) {
        await client.send(
          new UpdateTimeToLiveCommand({
            TableName: tableName,
            TimeToLiveSpecification: { AttributeName: definition.timeToLiveAttribute, Enabled: true },
          }),
        );
      }
    } catch (error) {
      if (!(error instanceof ResourceInUseException)) throw error;
    }
    const described = await client.send(new DescribeTableCommand({ TableName: tableName }));
    const arn = described.Table?.LatestStreamArn;
    if (arn) streams.set(tableName, arn);
  }
  return streams;
}
