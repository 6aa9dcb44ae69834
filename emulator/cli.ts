import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { parseAcl } from '../shared/acl.js';
import { authEnvironment } from '../shared/auth/settings.js';
import { parsePasswordDocument } from '../shared/auth.js';
import { MosquittoPasswordFile } from '../shared/mosquitto-passwords.js';
import { startEmulator } from './index.js';
import { isLogLevel, logLevels } from './log.js';

const usage = `Usage: npm start -- [--port P] [--data-dir DIR] [--jitter MS] [--throttle-posts SHARE] [--password-file FILE] [--acl-file FILE] [--users FILE.json]
                     [--users-table] [--jwt-issuer URL [--jwks-url URL] [--jwt-user-claim CLAIM]] [--log-level L]

  --port P         listen on 127.0.0.1:P (0 = any free port)   default 1884
  --data-dir DIR   keep all state in DIR across restarts        default: in memory
  --jitter MS      delay each function invocation by 0..MS ms   default 0
  --throttle-posts SHARE  refuse this share (0..1) of the functions' posts to clients with 429, as
                   API Gateway does past the account's rate; the broker retries them   default 0
  --users FILE     require CONNECT username/password: FILE holds { "users": { "<name>": <entry> } },
                   each entry from \`npx nimbus hash-password <password>\`   default: anyone connects
  --password-file FILE  require CONNECT username/password from a Mosquitto password file
                   (\`mosquitto_passwd\` or \`npx nimbus passwd FILE USER\`)   default: anyone connects
  --acl-file FILE  Mosquitto ACL file: clients publish, subscribe and receive only what it grants
                   default: everything but writing $ topics
  --users-table    also accept the users of the local users table nimbus-Users
                   (npx nimbus users add NAME --table nimbus-Users --endpoint <the DynamoDB endpoint printed>)
  --jwt-issuer URL also accept JSON Web Tokens of this issuer as passwords
  --jwks-url URL   its signing keys        default: OpenID discovery, else URL/.well-known/jwks.json
  --jwt-user-claim CLAIM   the claim naming the user                                        default sub
  --log-level L    error | warn | info (connects, subscribes, refusals, disconnects)
                   | debug (also each publish and delivery)      default info`;

function parse() {
  try {
    const { values } = parseArgs({
      options: {
        port: { type: 'string', default: '1884' },
        'data-dir': { type: 'string' },
        jitter: { type: 'string', default: '0' },
        'throttle-posts': { type: 'string', default: '0' },
        users: { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        'password-file': { type: 'string' },
        'acl-file': { type: 'string' },
        'users-table': { type: 'boolean' },
        'jwt-issuer': { type: 'string' },
        'jwks-url': { type: 'string' },
        'jwt-user-claim': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const port = Number(values.port);
    const jitter = Number(values.jitter);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new Error(`--port must be 0..65535, not "${values.port}"`);
    if (!Number.isFinite(jitter) || jitter < 0)
      throw new Error(`--jitter must be a number of milliseconds, not "${values.jitter}"`);
    const throttledPostShare = Number(values['throttle-posts']);
    if (!(throttledPostShare >= 0 && throttledPostShare < 1))
      throw new Error(
        `--throttle-posts must be a share from 0 up to (not including) 1, not "${values['throttle-posts']}"`,
      );
    const logLevel = values['log-level'];
    if (!isLogLevel(logLevel))
      throw new Error(`--log-level must be one of ${logLevels.join(', ')}, not "${logLevel}"`);
    const users = values.users ? usersFrom(values.users) : undefined;
    const passwordFile = values['password-file'];
    const aclFile = values['acl-file'];
    // Checked here, so a mistake is reported before DynamoDB Local starts.
    const userCount = passwordFile
      ? checked(passwordFile, '--password-file', (t) => new MosquittoPasswordFile(t).size)
      : 0;
    if (aclFile) checked(aclFile, '--acl-file', parseAcl);
    const issuer = values['jwt-issuer'];
    if (!issuer && (values['jwks-url'] || values['jwt-user-claim'])) {
      throw new Error('--jwks-url and --jwt-user-claim need --jwt-issuer');
    }
    const jwt = issuer
      ? { issuer, jwksUrl: values['jwks-url'], userClaim: values['jwt-user-claim'] }
      : undefined;
    if (jwt) authEnvironment({ jwt });
    return {
      help: values.help === true,
      port,
      jitter,
      throttledPostShare,
      dataDir: values['data-dir'],
      users,
      passwordFile,
      aclFile,
      userCount,
      usersTable: values['users-table'] === true,
      jwt,
      logLevel,
    };
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${usage}\n`);
    process.exit(2);
  }
}

function checked<T>(file: string, option: string, parse: (text: string) => T): T {
  try {
    return parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${option} ${file}: ${(error as Error).message}`);
  }
}

function usersFrom(file: string) {
  try {
    return parsePasswordDocument(readFileSync(file, 'utf8')).users;
  } catch (error) {
    throw new Error(`--users ${file}: ${(error as Error).message}`);
  }
}

/**
 * Why the gateway could not listen on 127.0.0.1:`port`, or undefined if it can. Asked before DynamoDB
 * Local starts, so a taken port is reported at once, not after Java's start-up, and leaves nothing behind.
 *
 * @example
 * await portProblem(1884); // 'port 1884 is in use: stop the other process or pass --port 0'
 */
function portProblem(port: number): Promise<string | undefined> {
  if (port === 0) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) =>
      resolve(
        error.code === 'EADDRINUSE'
          ? `port ${port} is in use: stop the other process or pass --port 0`
          : `cannot listen on port ${port} (${error.code ?? error.message}): pass another --port, or --port 0`,
      ),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(undefined)));
  });
}

/** How long a signalled emulator may take to stop before it exits anyway; the watchdog still stops Java. */
const stopTimeoutMs = 10_000;

// The functions deploy on Node.js 22+; the SDK's notice about running locally on Node 20 is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const args = parse();
if (args.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
const problem = await portProblem(args.port);
if (problem) {
  process.stderr.write(`${problem}\n`);
  process.exit(1);
}
const started = performance.now();
process.stderr.write('Starting Nimbus MQTT emulator (DynamoDB Local, functions, gateway)...\n');
try {
  const emulator = await startEmulator({
    port: args.port,
    dataDir: args.dataDir,
    jitterMs: args.jitter,
    throttledPostShare: args.throttledPostShare,
    users: args.users,
    logLevel: args.logLevel,
    passwordFile: args.passwordFile,
    aclFile: args.aclFile,
    usersTable: args.usersTable,
    jwt: args.jwt,
  });
  process.stderr.write(
    `Ready in ${((performance.now() - started) / 1000).toFixed(1)} s. Connect MQTT clients (subprotocol "mqtt", base64 text frames) to:\n`,
  );
  process.stdout.write(`${emulator.url}\n`);
  if (args.passwordFile) {
    process.stderr.write(
      `Authentication on: ${args.userCount} user(s) of ${args.passwordFile} may connect.\n`,
    );
  }
  if (args.users) {
    process.stderr.write(
      `Authentication on: ${Object.keys(args.users).length} user(s) of the users document may connect.\n`,
    );
  }
  if (args.usersTable) {
    process.stderr.write(
      `Users table on: npx nimbus users add NAME --table ${emulator.tables.Users} --endpoint ${emulator.dynamoEndpoint}\n`,
    );
  }
  if (args.jwt) process.stderr.write(`JSON Web Tokens of ${args.jwt.issuer} accepted as passwords.\n`);
  if (!args.passwordFile && !args.users && !args.usersTable && !args.jwt) {
    process.stderr.write(
      'Anonymous clients allowed: no --password-file, --users, --users-table or --jwt-issuer given, so anyone may connect.\n',
    );
  }
  process.stderr.write(
    args.aclFile
      ? `Topic ACL on: ${args.aclFile}.\n`
      : 'No --acl-file: every client may publish and subscribe to any topic except $ topics.\n',
  );
  process.stderr.write(
    `Console: ${emulator.consoleUrl}\nManagement API: ${emulator.managementEndpoint}  DynamoDB: ${emulator.dynamoEndpoint}\n` +
      `Metrics (Prometheus): ${emulator.managementEndpoint}/metrics  Ctrl-C stops and prints the estimated bill.\n`,
  );
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    // Ctrl-C reaches both npm and this process, and npm forwards it: the second SIGINT is the same request.
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: stopping...\n`);
    setTimeout(() => {
      process.stderr.write(`Not stopped after ${stopTimeoutMs / 1000} s; exiting anyway.\n`);
      process.exit(1);
    }, stopTimeoutMs).unref();
    await emulator.stop();
    process.exit(0);
  };
  // SIGHUP: the terminal closed. Each stops the emulator the same way, DynamoDB Local last. npm forwards
  // SIGINT and SIGTERM to its script's shell, and a shell (dash) running a command does not pass them
  // on: that is why `npm start` is `exec node …`, which makes this process the one npm signals.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, stop);
} catch (error) {
  process.stderr.write(`Nimbus emulator failed to start: ${(error as Error).message}\n`);
  process.exit(1);
}
