#!/usr/bin/env node
// `nimbus-bridge`: plain MQTT over TCP to a Nimbus endpoint (the same command as `nimbus bridge` in the repository).
import { runBridgeCli } from '../dist/esm/bridge/cli.js';

await runBridgeCli(process.argv.slice(2), 'nimbus-bridge');
