import { ConditionalCheckFailedException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';

function conditionFailed(error: unknown): boolean {
  if (
    error instanceof ConditionalCheckFailedException ||
    (error as Error).name === 'ConditionalCheckFailedException'
  ) {
    return true;
  }
  // A transaction reports which of its writes found its condition false.
  if (
    error instanceof TransactionCanceledException ||
    (error as Error).name === 'TransactionCanceledException'
  ) {
    const reasons = (error as TransactionCanceledException).CancellationReasons ?? [];
    return reasons.some((reason) => reason.Code === 'ConditionalCheckFailed');
  }
  return false;
}

/**
 * Awaits a conditional write (or transaction): true when it was made, false
 * when its condition did not hold. Any other failure is rethrown.
 *
 * @example
 * const claimed = await ifConditionHolds(
 *   db.send(new PutCommand({ TableName, Item, ConditionExpression: 'attribute_not_exists(connectionId)' })),
 * );
 */
export async function ifConditionHolds(write: Promise<unknown>): Promise<boolean> {
  try {
    await write;
    return true;
  } catch (error) {
    if (conditionFailed(error)) return false;
    throw error;
  }
}

/**
 * Awaits a transaction of conditional writes: the positions of the writes
 * whose condition did not hold, empty when the transaction was made. Any
 * other failure is rethrown. A transaction keeps a row and a counter in step
 * even when the SDK retries a write that had already succeeded: the retry
 * finds its own condition false instead of half-repeating.
 *
 * @example
 * const failed = await failedConditions(db.send(new TransactWriteCommand({ TransactItems })));
 * if (failed.includes(0)) return; // the first write had already been made
 */
export async function failedConditions(write: Promise<unknown>): Promise<number[]> {
  try {
    await write;
    return [];
  } catch (error) {
    if (!conditionFailed(error)) throw error;
    const reasons = (error as TransactionCanceledException).CancellationReasons ?? [];
    return reasons.flatMap((reason, index) => (reason.Code === 'ConditionalCheckFailed' ? [index] : []));
  }
}
