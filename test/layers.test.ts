import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

// The layer table lives in biome.json (noRestrictedImports per folder). These tests lint small probe
// files placed where the layers are, in a scratch copy of the project's Biome settings, so the rule is
// shown to bite on exactly the import specifiers the code base uses (relative paths and package names).

const root = fileURLToPath(new URL('..', import.meta.url));

interface Probe {
  /** Where the probe file sits, as if in the repository. */
  file: string;
  /** The one import statement it holds. */
  source: string;
  /** A fragment of the expected message, or null when the import is allowed. */
  refused: string | null;
}

const imports = (specifier: string) =>
  `import { probe } from '${specifier}';\n\nexport const used = probe;\n`;

const probes: Probe[] = [
  // shared/broker: the core, behind its ports.
  {
    file: 'shared/broker/probe.ts',
    source: imports('../storage/message-id.js'),
    refused: 'shared/broker may not import shared/storage/',
  },
  {
    file: 'shared/broker/handlers/probe.ts',
    source: imports('../../gateway/management-api.js'),
    refused: 'shared/broker may not import shared/gateway/',
  },
  {
    file: 'shared/broker/probe.ts',
    source:
      "import type { DynamoStore } from '../storage/dynamo-store.js';\n\nexport type Used = DynamoStore;\n",
    refused: 'shared/broker may not import shared/storage/',
  },
  {
    file: 'shared/broker/probe.ts',
    source: imports('@aws-sdk/client-dynamodb'),
    refused: 'shared/broker may not import AWS SDKs',
  },
  {
    file: 'shared/broker/probe.ts',
    source: imports('aws-lambda'),
    refused: 'shared/broker may not import AWS',
  },
  {
    file: 'shared/broker/probe.ts',
    source: imports('aws-cdk-lib/aws-sqs'),
    refused: 'shared/broker may not import infra/ or CDK',
  },
  {
    file: 'shared/broker/probe.ts',
    source: imports('../../infra/frame-queue-settings.js'),
    refused: 'shared/broker may not import infra/',
  },
  {
    file: 'shared/broker/probe.ts',
    source: imports('../runtime.js'),
    refused: 'shared/broker may not import shared/runtime.ts',
  },
  { file: 'shared/broker/probe.ts', source: imports('../ports.js'), refused: null },
  { file: 'shared/broker/probe.ts', source: imports('../protocol/frames.js'), refused: null },
  { file: 'shared/broker/probe.ts', source: imports('mqtt-packet'), refused: null },
  // shared/protocol: the wire codec, below the broker.
  {
    file: 'shared/protocol/probe.ts',
    source: imports('../broker/context.js'),
    refused: 'shared/protocol may not import shared/broker/',
  },
  {
    file: 'shared/protocol/probe.ts',
    source: imports('@aws-sdk/lib-dynamodb'),
    refused: 'shared/protocol may not import AWS',
  },
  // The rest of shared/, functions/ and emulator/: runtime code, never deploy-time code.
  { file: 'shared/probe.ts', source: imports('../infra/stack.js'), refused: 'shared may not import infra/' },
  {
    file: 'shared/storage/probe.ts',
    source: imports('../../infra/frame-queue-settings.js'),
    refused: 'shared may not import infra/',
  },
  {
    file: 'functions/message/probe.ts',
    source: imports('../../infra/frame-queue-settings.js'),
    refused: 'functions may not import infra/',
  },
  {
    file: 'functions/message/probe.ts',
    source: "export const settings = await import('../../infra/frame-queue-settings.js');\n",
    refused: 'functions may not import infra/',
  },
  {
    file: 'emulator/probe.ts',
    source: imports('../infra/frame-queue-settings.js'),
    refused: 'emulator may not import infra/',
  },
  {
    file: 'functions/message/probe.ts',
    source: imports('../../shared/storage/dynamo-store.js'),
    refused: null,
  },
  { file: 'functions/message/probe.ts', source: imports('@aws-sdk/client-dynamodb'), refused: null },
  { file: 'emulator/probe.ts', source: imports('./gateway.js'), refused: null },
  { file: 'emulator/probe.ts', source: imports('../shared/storage/dynamo-store.js'), refused: null },
  // client/: the wire contract only.
  {
    file: 'client/probe.ts',
    source: imports('../shared/broker/context.js'),
    refused: 'client may not import shared/broker/',
  },
  {
    file: 'client/probe.ts',
    source: imports('../shared/storage/dynamo-store.js'),
    refused: 'client may not import shared/storage/',
  },
  {
    file: 'client/probe.ts',
    source: imports('../shared/gateway/management-api.js'),
    refused: 'client may not import shared/gateway/',
  },
  {
    file: 'client/probe.ts',
    source: imports('@aws-sdk/client-apigatewaymanagementapi'),
    refused: 'client may not import AWS',
  },
  { file: 'client/probe.ts', source: imports('../shared/protocol/frames.js'), refused: null },
  // Outside the table: infra/ and tests may import anything.
  { file: 'infra/probe.ts', source: imports('../shared/tables.js'), refused: null },
  { file: 'test/probe.ts', source: imports('../infra/frame-queue-settings.js'), refused: null },
];

interface Diagnostic {
  category: string;
  message: string;
  location: { path: string };
}

let scratch: string;
/** noRestrictedImports messages by probe file. */
const refusals = new Map<string, string[]>();

before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'nimbus-layers-'));
  copyFileSync(join(root, 'biome.json'), join(scratch, 'biome.json'));
  // One file per probe, named by its index, so one linter run covers them all.
  probes.forEach((probe, index) => {
    const path = join(scratch, probeFile(probe, index));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, probe.source);
  });
  const run = spawnSync(join(root, 'node_modules/.bin/biome'), ['lint', '--reporter=json', '.'], {
    cwd: scratch,
    encoding: 'utf8',
  });
  assert.ok(run.stdout.startsWith('{'), `Biome gave no JSON report:\n${run.stdout}${run.stderr}`);
  const report = JSON.parse(run.stdout) as { diagnostics: Diagnostic[] };
  for (const d of report.diagnostics) {
    if (d.category !== 'lint/style/noRestrictedImports') continue;
    refusals.set(d.location.path, [...(refusals.get(d.location.path) ?? []), d.message]);
  }
});
after(() => rmSync(scratch, { recursive: true, force: true }));

/** `shared/broker/probe.ts` #3 → `shared/broker/probe-3.ts`. */
function probeFile(probe: Probe, index: number): string {
  return probe.file.replace(/\.ts$/, `-${index}.ts`);
}

describe('layers (biome.json noRestrictedImports)', () => {
  probes.forEach((probe, index) => {
    const statement = probe.source.split('\n')[0];
    const name = probe.refused ? `${probe.file} may not: ${statement}` : `${probe.file} may: ${statement}`;
    test(name, () => {
      const messages = refusals.get(probeFile(probe, index)) ?? [];
      if (probe.refused === null) {
        assert.deepEqual(messages, []);
      } else {
        assert.equal(messages.length, 1, `one diagnostic, got ${JSON.stringify(messages)}`);
        assert.ok(messages[0].includes(probe.refused), `"${messages[0]}" names "${probe.refused}"`);
      }
    });
  });
});
