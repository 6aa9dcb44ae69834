/**
 * The long fuzz run (`npm run fuzz`): every property of test/support/fuzz-properties.ts with its
 * full number of cases, a line per property and a total. A failing property keeps going with fresh
 * seeds, so one bug does not hide the rest; each failure prints its shrunk counterexample and how
 * to replay it.
 *
 * Environment: FUZZ_SCALE multiplies the cases (default 1); FUZZ_ONLY runs the properties whose
 * name contains it; FUZZ_SEED and FUZZ_PATH replay a failure.
 */
import fc from 'fast-check';
import { fuzzProperties } from '../support/fuzz-properties.js';

const scale = Number(process.env.FUZZ_SCALE ?? 1);
const only = process.env.FUZZ_ONLY;
const replaySeed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const replayPath = process.env.FUZZ_PATH;
/** A property that keeps failing is stopped after this many distinct failures. */
const maxFailuresPerProperty = 3;

let totalCases = 0;
let totalFailures = 0;
const started = Date.now();
console.log(`fuzz: scale ${scale}`);
for (const prop of fuzzProperties()) {
  if (only && !prop.name.includes(only)) continue;
  const target = Math.max(1, Math.round(prop.runs * scale));
  let cases = 0;
  let failures = 0;
  const t0 = Date.now();
  while (cases < target && failures < maxFailuresPerProperty) {
    const seed = replaySeed ?? Math.floor(Math.random() * 2 ** 31);
    const details = await prop.check({ numRuns: target - cases, seed, path: replayPath });
    cases += details.numRuns;
    if (!details.failed) break;
    failures++;
    console.log(`\nFAIL ${prop.name}`);
    console.log(
      `  replay: FUZZ_ONLY='${prop.name.slice(0, 40)}' FUZZ_SEED=${details.seed} FUZZ_PATH=${details.counterexamplePath} npm run fuzz`,
    );
    console.log(indent(fc.defaultReportMessage(details) ?? ''));
    if (replaySeed !== undefined) break;
  }
  totalCases += cases;
  totalFailures += failures;
  console.log(
    `${failures === 0 ? 'ok  ' : 'FAIL'} ${String(cases).padStart(7)} cases ${String(failures).padStart(2)} failures ${String(Date.now() - t0).padStart(7)} ms  ${prop.name}`,
  );
}
console.log(
  `total: ${totalCases} cases, ${totalFailures} failures in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
process.exitCode = totalFailures > 0 ? 1 : 0;

function indent(text: string): string {
  return text
    .split('\n')
    .slice(0, 40)
    .map((line) => `    ${line.length > 400 ? `${line.slice(0, 400)}…` : line}`)
    .join('\n');
}
