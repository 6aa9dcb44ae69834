/**
 * `nimbus users add|remove|list`: manages the users table (shared/tables.ts `usersTable`) with the
 * AWS SDK. Passwords are read from a prompt or stdin, never from the command line, where `ps` and
 * shell history would keep them; the table holds only their `$7$` hashes.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoUserDirectory } from '../shared/auth/dynamo-user-directory.js';
import { defaultHashIterations, hashMosquittoPassword } from '../shared/auth/mosquitto-hash.js';
import { maxUsernameBytes } from '../shared/auth/table-authenticator.js';

export const usersUsage = `Usage: nimbus users add <name> --table NAME [--region R] [--endpoint URL] [--iterations N]
       nimbus users remove <name> --table NAME [--region R] [--endpoint URL]
       nimbus users list --table NAME [--region R] [--endpoint URL]

Manages the users table of a broker deployed with authentication.usersTable (the stack output
UsersTableName), or of the emulator (--table nimbus-Users --endpoint <its DynamoDB endpoint>).
"add" asks for the password twice on a terminal, or reads its first line from stdin
(printf '%s\\n' "$PW" | nimbus users add kitchen --table …); an existing user gets the new password.

  --table NAME     the users table                                       required
  --region R       its AWS region                  default: AWS_REGION, or us-east-1 with --endpoint
  --endpoint URL   another DynamoDB endpoint (the emulator's DynamoDB Local)
  --iterations N   PBKDF2-SHA512 rounds of the stored $7$ hash            default ${defaultHashIterations}

AWS credentials come from the usual places (environment, profile, SSO).`;

/** What the command reads and writes; tests give their own. */
export interface UsersCliIo {
  readonly stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  readonly env: NodeJS.ProcessEnv;
}

class UsageError extends Error {}

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      table: { type: 'string' },
      region: { type: 'string' },
      endpoint: { type: 'string' },
      iterations: { type: 'string', default: String(defaultHashIterations) },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [action, name, ...extra] = positionals;
  if (values.help) return { help: true as const };
  if (action !== 'add' && action !== 'remove' && action !== 'list') {
    throw new UsageError(action === undefined ? 'say add, remove or list' : `unknown action "${action}"`);
  }
  if (action === 'list' ? name !== undefined : name === undefined || name === '' || extra.length > 0) {
    throw new UsageError(action === 'list' ? '"list" takes no user name' : `"${action}" takes one user name`);
  }
  if (!values.table) throw new UsageError('--table is required');
  if (name !== undefined && Buffer.byteLength(name) > maxUsernameBytes) {
    throw new UsageError(`user names are at most ${maxUsernameBytes} bytes`);
  }
  const iterations = Number(values.iterations);
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new UsageError(`--iterations must be a whole number, not "${values.iterations}"`);
  }
  if (values.endpoint !== undefined && !/^https?:\/\//.test(values.endpoint)) {
    throw new UsageError(`--endpoint must be an http(s) URL, not "${values.endpoint}"`);
  }
  return { help: false as const, action, name: name ?? '', table: values.table, ...values, iterations };
}

/**
 * Runs `nimbus users` with its arguments (the words after `users`); resolves to the exit code.
 *
 * @example
 * process.exitCode = await runUsersCli(['list', '--table', 'nimbus-Users', '--endpoint', 'http://127.0.0.1:8000']);
 */
export async function runUsersCli(argv: string[], io: UsersCliIo = process): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (error) {
    io.stderr.write(`nimbus users: ${(error as Error).message}\n\n${usersUsage}\n`);
    return 2;
  }
  if (args.help) {
    io.stdout.write(`${usersUsage}\n`);
    return 0;
  }
  const region =
    args.region ?? io.env.AWS_REGION ?? io.env.AWS_DEFAULT_REGION ?? (args.endpoint && 'us-east-1');
  if (!region) {
    io.stderr.write('nimbus users: no AWS region: pass --region or set AWS_REGION\n');
    return 2;
  }
  // DynamoDB Local ignores credentials, but the SDK insists on some.
  const local = args.endpoint && !io.env.AWS_ACCESS_KEY_ID && !io.env.AWS_PROFILE;
  const client = new DynamoDBClient({
    region,
    ...(args.endpoint ? { endpoint: args.endpoint } : {}),
    ...(local ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' } } : {}),
  });
  const users = new DynamoUserDirectory(DynamoDBDocumentClient.from(client), args.table);
  try {
    if (args.action === 'add') {
      const password = await readPassword(io);
      const replaced = await users.put({
        username: args.name,
        passwordHash: await hashMosquittoPassword(password, args.iterations),
      });
      io.stderr.write(
        `${replaced ? 'Changed the password of' : 'Added'} user "${args.name}" in ${args.table}.\n`,
      );
    } else if (args.action === 'remove') {
      if (!(await users.remove(args.name))) {
        io.stderr.write(`nimbus users: there is no user "${args.name}" in ${args.table}\n`);
        return 1;
      }
      io.stderr.write(`Removed user "${args.name}" from ${args.table}.\n`);
    } else {
      for await (const user of users.list()) io.stdout.write(`${user.username}\t${user.updatedAt ?? ''}\n`);
    }
    return 0;
  } catch (error) {
    io.stderr.write(`nimbus users: ${explain(error as Error, args.table, region)}\n`);
    return 1;
  } finally {
    client.destroy();
  }
}

function explain(error: Error, table: string, region: string): string {
  if (error.name === 'ResourceNotFoundException') {
    return `table ${table} was not found in ${region}: use the UsersTableName output of the stack (deployed with authentication.usersTable), and its region`;
  }
  if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
    return `${error.message}: is DynamoDB listening there? The emulator prints its DynamoDB endpoint at start`;
  }
  if (error.name === 'CredentialsProviderError') {
    return `no AWS credentials (${error.message}): set AWS_PROFILE or run \`aws sso login\``;
  }
  return error.message;
}

/** The password: typed twice without echo on a terminal, else the first line of stdin. */
async function readPassword(io: UsersCliIo): Promise<string> {
  if (io.stdin.isTTY && io.stdin.setRawMode) {
    const first = await prompt(io, 'Password: ');
    const second = await prompt(io, 'Password again: ');
    if (first !== second) throw new Error('the passwords differ; nothing was changed');
    return nonEmpty(first);
  }
  const lines = createInterface({ input: io.stdin, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    lines.close();
    return nonEmpty(line);
  }
  throw new Error('no password on stdin: pipe it in, or run on a terminal to be asked');
}

function nonEmpty(password: string): string {
  if (password === '') throw new Error('the password is empty; nothing was changed');
  return password;
}

/** Reads one line from a terminal in raw mode, so the password is not echoed. */
function prompt(io: UsersCliIo, question: string): Promise<string> {
  io.stderr.write(question);
  const stdin = io.stdin;
  stdin.setRawMode?.(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let typed = '';
    const done = (finish: () => void) => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.stderr.write('\n');
      finish();
    };
    const onData = (chunk: Buffer | string) => {
      for (const char of chunk.toString()) {
        if (char === '\r' || char === '\n') return done(() => resolve(typed));
        if (char === '\u0003') return done(() => reject(new Error('cancelled')));
        if (char === '\u007f' || char === '\b') typed = typed.slice(0, -1);
        else typed += char;
      }
    };
    stdin.on('data', onData);
  });
}
