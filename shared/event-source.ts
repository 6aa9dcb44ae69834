/**
 * Settings of the event source mapping that feeds the fan-out function from
 * the message table's stream. The CDK construct and the emulator's stream
 * poller read the same object.
 */
export interface StreamEventSourceSettings {
  /** Most records in one invocation. */
  readonly batchSize: number;
  /** How long to gather records before invoking, in seconds. */
  readonly maxBatchingWindowSeconds: number;
  /** Retries of a failed batch before it goes to the on-failure destination. */
  readonly retryAttempts: number;
  /** Records older than this are sent to the on-failure destination unprocessed. */
  readonly maxRecordAgeSeconds: number;
  /** Split a failing batch in two and retry each half. */
  readonly bisectBatchOnError: boolean;
  /** The function may answer `batchItemFailures` to retry from a given record. */
  readonly reportBatchItemFailures: boolean;
  /** Concurrent batches per shard (records of one partition key stay in order). */
  readonly parallelizationFactor: number;
}

export const fanoutEventSource: StreamEventSourceSettings = {
  batchSize: 100,
  maxBatchingWindowSeconds: 0,
  retryAttempts: 10,
  maxRecordAgeSeconds: 3600,
  bisectBatchOnError: true,
  reportBatchItemFailures: true,
  parallelizationFactor: 4,
};
