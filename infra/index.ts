export type { BrokerFunctionId } from '../shared/function-environment.js';
export { type BrokerLogLevel, brokerRuntime, maxAuthUsersBytes } from './functions.js';
export * from './nimbus-broker.js';
export * from './stack.js';
