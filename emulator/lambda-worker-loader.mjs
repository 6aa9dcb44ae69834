// Worker threads do not inherit tsx's module hooks, so each emulated Lambda
// instance registers them before loading the TypeScript worker and handler.
import { register } from 'tsx/esm/api';

register();
await import('./lambda-worker.ts');
