/**
 * Each broker function's timeout and memory, in one place for the CDK construct (infra/functions.ts)
 * and the emulator (emulator/index.ts), so work that would time out on AWS times out locally too.
 */
import type { BrokerFunctionId } from './function-environment.js';

export interface FunctionSettings {
  /** Lambda's timeout: the invocation is abandoned after it, and its event retried. */
  readonly timeoutSeconds: number;
  readonly description: string;
}

/** Memory of each function, in MB, unless the construct's `memorySize` says otherwise. The broker is I/O bound. */
export const defaultFunctionMemoryMb = 256;

/** What differs between the functions besides their code. */
export const functionSettings: Readonly<Record<BrokerFunctionId, FunctionSettings>> = {
  connect: { timeoutSeconds: 5, description: 'MQTT over WebSocket handshake ($connect)' },
  message: {
    timeoutSeconds: 15,
    description: 'MQTT packets from clients ($default, via the frame queue)',
  },
  fanout: { timeoutSeconds: 60, description: 'Delivers published messages to subscribers' },
  sweeper: {
    // The keep-alive check loops through its minute (shared/broker/keepalive.ts keepAliveSchedule).
    timeoutSeconds: 75,
    description: 'Keep-alive expiry and connections whose $disconnect was lost',
  },
};
