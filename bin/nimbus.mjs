#!/usr/bin/env node
// `npx nimbus …` from the repository: registers tsx so the TypeScript CLI runs without a build step,
// the same way emulator/lambda-worker-loader.mjs starts the emulated Lambda workers.
import { register } from 'tsx/esm/api';

register();
await import('./nimbus.ts');
