/**
 * What one users-table password check costs on this machine: the `$7$` verification at the default
 * iterations, run one at a time. `npx tsx bench/kdf.ts [iterations] [runs]`. A 256 MB Lambda function
 * has about a seventh of a vCPU (1,769 MB is one), so expect about seven times the single-core figure.
 */
import {
  defaultHashIterations,
  hashMosquittoPassword,
  verifyMosquittoHash,
} from '../shared/auth/mosquitto-hash.js';

const iterations = Number(process.argv[2] ?? defaultHashIterations);
const runs = Number(process.argv[3] ?? 50);
const hash = await hashMosquittoPassword('benchmark-password', iterations);
const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const started = performance.now();
  await verifyMosquittoHash(hash, 'benchmark-password');
  times.push(performance.now() - started);
}
times.sort((a, b) => a - b);
const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(1);
process.stdout.write(
  `$7$ PBKDF2-SHA512, ${iterations} iterations, ${runs} verifications: min ${at(0)} ms, p50 ${at(0.5)} ms, p90 ${at(0.9)} ms\n`,
);
