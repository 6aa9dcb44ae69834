/**
 * `nimbus`: the command line. `nimbus emulator` runs the local broker, `nimbus bridge` lets plain MQTT
 * over TCP clients use a Nimbus endpoint, `nimbus passwd` writes a Mosquitto password file,
 * `nimbus hash-password` makes a users entry for authentication. Started through bin/nimbus.mjs, which registers tsx.
 */
import { runBridgeCli } from '../bridge/cli.js';
import { hashPassword } from '../shared/auth.js';
import { runPasswdCli } from './passwd.js';
import { runUsersCli } from './users.js';

const usage = `Usage: nimbus <command> [options]

Commands:
  emulator   run the broker locally (DynamoDB Local, functions, gateway); prints its ws:// URL
  bridge     accept plain MQTT over TCP (mosquitto, device SDKs) and carry it to a Nimbus endpoint
  passwd FILE USER
             add or replace USER in a Mosquitto password file (prompts for the password, or reads stdin)
  hash-password <password>
             print the users entry for a password: { "sha256": …, "salt": … } (see README, Authentication)
  users add|remove|list --table NAME
             manage the users table of a deployed broker or the emulator (see README, Authentication on AWS)

nimbus <command> --help shows a command's options. Example:
  npx nimbus emulator &
  npx nimbus bridge --listen 1883 --url ws://127.0.0.1:1884`;

const [command, ...rest] = process.argv.slice(2);
switch (command) {
  case 'bridge':
    await runBridgeCli(rest);
    break;
  case 'passwd':
    await runPasswdCli(rest);
    break;
  case 'hash-password': {
    const [password, ...extra] = rest;
    if (password === undefined || extra.length > 0 || password === '--help' || password === '-h') {
      process.stderr.write(
        'Usage: nimbus hash-password <password>\n\nPrints {"sha256":"…","salt":"…"}: put it under "users" as the value of a username.\n',
      );
      process.exit(password === '--help' || password === '-h' ? 0 : 2);
    }
    process.stdout.write(`${JSON.stringify(hashPassword(password))}\n`);
    break;
  }
  case 'users':
    // The SDK's notice about Node 20 support would read like a problem with the command.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    process.exitCode = await runUsersCli(rest);
    break;
  case 'emulator':
    // emulator/cli.ts parses process.argv on import: leave it only the words after "emulator".
    process.argv.splice(2, 1);
    await import('../emulator/cli.js');
    break;
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    process.stdout.write(`${usage}\n`);
    break;
  default:
    process.stderr.write(`nimbus: unknown command "${command}"\n\n${usage}\n`);
    process.exit(2);
}
