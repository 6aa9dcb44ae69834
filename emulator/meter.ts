/**
 * Counts the units AWS bills for, as the emulator runs: API Gateway messages
 * (in 32 KB units) and connection-minutes, Lambda requests and GB-seconds
 * (duration rounded up to 1 ms), DynamoDB requests and read/write capacity,
 * SQS requests (in 64 KB units).
 */
export interface MeterReading {
  gateway: { messagesIn: number; messagesOut: number; billedMessages: number; connectionMinutes: number };
  lambda: Record<string, { requests: number; gbSeconds: number; instances: number[] }>;
  dynamodb: { requests: Record<string, number>; readUnits: number; writeUnits: number };
  /** SQS API calls by operation, and billed requests (one per 64 KB of payload). Absent in readings made before it was metered. */
  sqs?: { requests: Record<string, number>; billedRequests: number };
}

const gatewayUnitBytes = 32 * 1024;
const sqsUnitBytes = 64 * 1024;

export class Meter {
  private gatewayIn = 0;
  private gatewayOut = 0;
  private billedMessages = 0;
  private connectionMs = 0;
  private readonly openConnections = new Map<string, number>();
  private readonly lambda = new Map<
    string,
    { requests: number; gbSeconds: number; instances: Set<number> }
  >();
  private readonly dynamoRequests = new Map<string, number>();
  private readUnits = 0;
  private writeUnits = 0;
  private readonly sqsRequests = new Map<string, number>();
  private sqsBilled = 0;

  gatewayMessage(direction: 'in' | 'out', bytes: number): void {
    if (direction === 'in') this.gatewayIn++;
    else this.gatewayOut++;
    this.billedMessages += Math.max(1, Math.ceil(bytes / gatewayUnitBytes));
  }

  connectionOpened(connectionId: string, at = Date.now()): void {
    this.openConnections.set(connectionId, at);
  }

  connectionClosed(connectionId: string, at = Date.now()): void {
    const opened = this.openConnections.get(connectionId);
    if (opened === undefined) return;
    this.openConnections.delete(connectionId);
    this.connectionMs += at - opened;
  }

  lambdaInvocation(functionName: string, durationMs: number, memoryMb: number, instanceId: number): void {
    const entry = this.lambda.get(functionName) ?? {
      requests: 0,
      gbSeconds: 0,
      instances: new Set<number>(),
    };
    entry.requests++;
    entry.gbSeconds += (Math.ceil(durationMs) / 1000) * (memoryMb / 1024);
    entry.instances.add(instanceId);
    this.lambda.set(functionName, entry);
  }

  dynamoRequest(operation: string, readUnits: number, writeUnits: number): void {
    this.dynamoRequests.set(operation, (this.dynamoRequests.get(operation) ?? 0) + 1);
    this.readUnits += readUnits;
    this.writeUnits += writeUnits;
  }

  /** Forgets everything counted so far. */
  reset(): void {
    this.gatewayIn = 0;
    this.gatewayOut = 0;
    this.billedMessages = 0;
    this.connectionMs = 0;
    this.openConnections.clear();
    this.lambda.clear();
    this.dynamoRequests.clear();
    this.readUnits = 0;
    this.writeUnits = 0;
    this.sqsRequests.clear();
    this.sqsBilled = 0;
  }

  /** One SQS API call carrying `payloadBytes` (all messages of a batch call together). */
  sqsRequest(operation: string, payloadBytes: number): void {
    this.sqsRequests.set(operation, (this.sqsRequests.get(operation) ?? 0) + 1);
    this.sqsBilled += Math.max(1, Math.ceil(payloadBytes / sqsUnitBytes));
  }

  /** A snapshot; connection-minutes include connections still open. */
  read(now = Date.now()): MeterReading {
    let openMs = 0;
    for (const opened of this.openConnections.values()) openMs += now - opened;
    return {
      gateway: {
        messagesIn: this.gatewayIn,
        messagesOut: this.gatewayOut,
        billedMessages: this.billedMessages,
        connectionMinutes: (this.connectionMs + openMs) / 60_000,
      },
      lambda: Object.fromEntries(
        [...this.lambda].map(([name, e]) => [
          name,
          { requests: e.requests, gbSeconds: e.gbSeconds, instances: [...e.instances] },
        ]),
      ),
      dynamodb: {
        requests: Object.fromEntries(this.dynamoRequests),
        readUnits: this.readUnits,
        writeUnits: this.writeUnits,
      },
      sqs: { requests: Object.fromEntries(this.sqsRequests), billedRequests: this.sqsBilled },
    };
  }
}
