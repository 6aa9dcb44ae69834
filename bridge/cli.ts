/** `nimbus bridge`: the command-line face of {@link startBridge}. */
import { parseArgs } from 'node:util';
import { startBridge } from './index.js';

/** The usage text, under the name the command was started by. */
export const bridgeUsage = (
  command: string,
): string => `Usage: ${command} [--listen PORT] [--host ADDR] [--url URL] [--quiet]

Lets plain MQTT clients (mosquitto_pub/sub, device SDKs, conformance suites) use a Nimbus broker:
accepts MQTT over TCP and carries each TCP connection over its own WebSocket speaking the Nimbus
wire contract, so each one is its own MQTT session.

  --listen PORT   TCP port for MQTT clients (0 = any free port)    default 1883
  --host ADDR     address to bind (0.0.0.0 = every interface)      default 127.0.0.1
  --url URL       the Nimbus endpoint: the wss:// stage URL that   default ws://127.0.0.1:1884
                  cdk deploy printed, or the emulator's ws:// URL
  --quiet         log only connections closed for a problem, not each open and close

Packets over 98,304 bytes cannot pass the gateway: the bridge closes that client's connection.`;

function parse(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string', default: '1883' },
      host: { type: 'string', default: '127.0.0.1' },
      url: { type: 'string', default: 'ws://127.0.0.1:1884' },
      quiet: { type: 'boolean', short: 'q' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const listenPort = Number(values.listen);
  if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 65535) {
    throw new Error(`--listen must be a port 0..65535, not "${values.listen}"`);
  }
  let protocol: string;
  try {
    protocol = new URL(values.url).protocol;
  } catch {
    throw new Error(`--url must be a ws:// or wss:// URL, not "${values.url}"`);
  }
  if (protocol !== 'ws:' && protocol !== 'wss:') {
    throw new Error(`--url must be a ws:// or wss:// URL, not "${values.url}"`);
  }
  return {
    help: values.help === true,
    quiet: values.quiet === true,
    listenPort,
    host: values.host,
    url: values.url,
  };
}

/**
 * Runs `nimbus bridge` with its arguments (the words after `bridge`) until SIGINT or SIGTERM;
 * `command` names it in the usage text (`nimbus-bridge` when started from the client package).
 * Prints the listening address on stdout once MQTT clients can connect; everything else goes to stderr.
 *
 * @example
 * await runBridgeCli(['--listen', '1883', '--url', 'ws://127.0.0.1:1884']);
 */
export async function runBridgeCli(argv: string[], command = 'nimbus bridge'): Promise<void> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${bridgeUsage(command)}\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(`${bridgeUsage(command)}\n`);
    return;
  }
  const log = (message: string) => process.stderr.write(`[bridge] ${message}\n`);
  let bridge: Awaited<ReturnType<typeof startBridge>>;
  try {
    bridge = await startBridge({
      listenPort: args.listenPort,
      host: args.host,
      url: args.url,
      log,
      quiet: args.quiet,
    });
  } catch (error) {
    process.stderr.write(`Nimbus bridge failed to start: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const shown = args.host.includes(':') ? `[${args.host}]` : args.host;
  process.stdout.write(`Bridge listening on mqtt://${shown}:${bridge.port} → ${args.url}\n`);
  process.stderr.write('Ctrl-C stops.\n');
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('Stopping the bridge...\n');
    await bridge.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
