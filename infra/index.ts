export * from './nimbus-broker.js';
export * from './stack.js';
