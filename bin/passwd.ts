/**
 * `nimbus passwd FILE USER`: adds or replaces USER's `$7$` entry in a Mosquitto password file. The
 * password is read from a no-echo prompt (asked twice) on a terminal, else from the first line of
 * stdin; never from the command line, where other users and shell history would see it.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hashMosquittoPassword } from '../shared/auth/mosquitto-hash.js';
import { withPasswordEntry } from '../shared/mosquitto-passwords.js';

const usage = `Usage: nimbus passwd FILE USER

Adds USER to the Mosquitto password file FILE (created if missing), or replaces its password.
The password is prompted for without echo, or read from stdin when it is not a terminal:
  printf '%s\\n' "$PASSWORD" | npx nimbus passwd passwd alice`;

/** Reads one line from a terminal without echoing it. */
function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    let text = '';
    const onData = (chunk: Buffer) => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') {
          done();
          resolve(text);
          return;
        }
        if (char === '\u0003') {
          done();
          reject(new Error('cancelled'));
          return;
        }
        if (char === '\u007f' || char === '\b') text = text.slice(0, -1);
        else text += char;
      }
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

async function readStdinLine(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
}

/** Runs the command with its arguments; exits the process on misuse. */
export async function runPasswdCli(args: readonly string[]): Promise<void> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const [file, user, ...extra] = args;
  if (file === undefined || user === undefined || extra.length > 0) {
    process.stderr.write(
      extra.length > 0
        ? `nimbus passwd: the password is never taken from the command line; it is prompted for or read from stdin.\n\n${usage}\n`
        : `${usage}\n`,
    );
    process.exit(2);
  }
  try {
    let password: string;
    if (process.stdin.isTTY) {
      password = await promptHidden(`Password for ${user}: `);
      if (password !== '' && (await promptHidden('Again: ')) !== password) {
        throw new Error('the passwords differ; nothing was changed');
      }
    } else {
      password = await readStdinLine();
    }
    if (password === '') throw new Error('an empty password is refused; nothing was changed');
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    writeFileSync(file, withPasswordEntry(text, user, await hashMosquittoPassword(password)), {
      mode: 0o600,
    });
    process.stderr.write(
      `${user} ${text.includes(`\n${user}:`) || text.startsWith(`${user}:`) ? 'updated' : 'added'} in ${file}\n`,
    );
  } catch (error) {
    process.stderr.write(`nimbus passwd: ${(error as Error).message}\n`);
    process.exit(1);
  }
}
