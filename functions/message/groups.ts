import { processPartialResponse, SqsFifoPartialProcessorAsync } from '@aws-lambda-powertools/batch';
import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';

/**
 * The records of a FIFO batch by message group, each group's in queue order. A record without a
 * group id (not a FIFO message) is a group of its own key `''`.
 *
 * @example
 * byGroup(event.Records).get(connectionId); // that connection's frames, oldest first
 */
export function byGroup(records: readonly SQSRecord[]): Map<string, SQSRecord[]> {
  const groups = new Map<string, SQSRecord[]>();
  for (const record of records) {
    const id = record.attributes.MessageGroupId ?? '';
    const group = groups.get(id);
    if (group) group.push(record);
    else groups.set(id, [record]);
  }
  return groups;
}

/**
 * Handles a FIFO batch as Lambda's SQS event source hands it over: up to ten messages of several
 * groups (connections). Groups run concurrently, each group's records one after another, so a batch
 * takes about as long as its longest group instead of the sum of all (GB-seconds are billed for the
 * wait). A failure stops its own group there (Powertools' FIFO processor): that record and the
 * rest of its group are reported failed, to be retried in order; other groups are not held up.
 *
 * @example
 * return processGroupsConcurrently(event, (record) => handle(frameFromRecord(record)));
 */
export async function processGroupsConcurrently(
  event: SQSEvent,
  recordHandler: (record: SQSRecord) => Promise<void>,
): Promise<SQSBatchResponse> {
  const responses = await Promise.all(
    [...byGroup(event.Records).values()].map((records) =>
      processPartialResponse({ Records: records }, recordHandler, new SqsFifoPartialProcessorAsync(), {
        skipGroupOnError: true,
        // A group that failed whole is reported like any other, not thrown: the other groups succeeded.
        throwOnFullBatchFailure: false,
      }),
    ),
  );
  return { batchItemFailures: responses.flatMap((response) => response.batchItemFailures) };
}
