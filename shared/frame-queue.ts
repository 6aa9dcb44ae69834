/**
 * The FIFO queue between the `$default` route and the message function, and the event source
 * mapping that drains it (docs/adr/0003-ordering.md). The CDK construct and the emulator's queue
 * read the same object; no CDK imports here, so the functions and the emulator can load it.
 */
export interface FrameQueueSettings {
  /** Most frames in one invocation (10 is SQS FIFO's maximum). */
  readonly batchSize: number;
  /** The function may answer `batchItemFailures` to retry from a given record. */
  readonly reportBatchItemFailures: boolean;
  /** Receives of a frame before it moves to the dead-letter queue. */
  readonly maxReceiveCount: number;
  /** How long a received batch stays hidden, i.e. how long a failed frame blocks its connection. */
  readonly visibilityTimeoutSeconds: number;
  /** A repeated deduplication id within this window is dropped (fixed by SQS at 5 minutes). */
  readonly deduplicationWindowSeconds: number;
}

export const frameQueueSettings: FrameQueueSettings = {
  batchSize: 10,
  reportBatchItemFailures: true,
  maxReceiveCount: 5,
  // At least the message function's timeout (15 s), as Lambda requires of a queue it polls.
  visibilityTimeoutSeconds: 30,
  deduplicationWindowSeconds: 300,
};

/** The message attribute that carries the connection id (the group id says it too, but is not meant for data). */
export const connectionIdAttribute = 'connectionId';

/** The message attribute that carries the client's address ($context.identity.sourceIp), for login throttling. */
export const sourceIpAttribute = 'sourceIp';

/**
 * `$disconnect` goes into the same message group as the connection's frames, so it is handled
 * after every frame sent before it: a DISCONNECT frame always discards the will before the
 * connection's end is handled. The route marks its message with this attribute.
 */
export const eventTypeAttribute = 'eventType';
export const disconnectEventType = 'DISCONNECT';
/** SQS needs a non-empty body; the attribute, not the body, says what the message is. */
export const disconnectBody = '$disconnect';
