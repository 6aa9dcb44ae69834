/**
 * Pages of a large fan-out handed to parallel invocations of the fan-out function (ADR 0024): the
 * event that carries one, and the Lambda call that runs it and waits for its answer.
 */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { FanOutResult } from './broker/fanout.js';
import type { FanOutPage } from './broker/fanout-batch.js';
import type { StoredMessage, SubscriptionRecord } from './ports.js';
import { messageFromStreamImage } from './storage/stream-record.js';

/** The variable that sets how many subscribers one fan-out invocation delivers to before it pages. */
export const fanoutPageSizeEnv = 'NIMBUS_FANOUT_PAGE_SIZE';

/**
 * Subscribers per page: about what one invocation posts to in a second or two, so a page ends far
 * inside the function's timeout, and a page's event (its subscriptions) stays far under Lambda's
 * 256 KB payload limit for any message the gateway can carry.
 */
export const defaultFanoutPageSize = 500;

/** The variable that sets how many pages one fan-out invocation has running elsewhere at once. */
export const fanoutPagesInFlightEnv = 'NIMBUS_FANOUT_PAGES_IN_FLIGHT';

/**
 * Pages one invocation runs elsewhere at once. Each is an invocation drawing on the account's
 * Lambda concurrency (1,000 by default, shared with every function), and past it Lambda refuses
 * them; 200 leave room for the rest of the broker and take 1,000,000 subscribers (2,000 pages of
 * a second or two each) through in ten rounds, inside the function's 60 s.
 */
export const defaultFanoutPagesInFlight = 200;

/** Stream images as the stream delivers them (JSON, binary as base64). */
type StreamImage = Record<string, unknown>;

/** The event of a page invocation: the batch's records' images, not decoded messages, so bytes survive JSON. */
export interface FanOutPageEvent {
  readonly fanOutPage: {
    readonly images: readonly StreamImage[];
    readonly matches: ReadonlyArray<readonly [string, readonly SubscriptionRecord[]]>;
  };
}

/** Whether an event is a page rather than a stream batch. */
export function isFanOutPageEvent(event: unknown): event is FanOutPageEvent {
  return typeof event === 'object' && event !== null && 'fanOutPage' in event;
}

/**
 * The page back from its event.
 *
 * @example
 * await fanOutPage(broker, pageFromEvent(event));
 */
export function pageFromEvent(event: FanOutPageEvent): FanOutPage {
  const messages = event.fanOutPage.images
    .map((image) => messageFromStreamImage(image))
    .filter((m): m is StoredMessage => m !== undefined);
  return { messages, matches: event.fanOutPage.matches };
}

/**
 * Runs pages as synchronous invocations of `functionName` (the fan-out function itself): each call
 * resolves with the page's result once it is delivered, and rejects when the invocation failed, so
 * the caller can retry it or fail its batch.
 *
 * @example
 * const runPage = lambdaPageRunner(new LambdaClient({}), process.env.AWS_LAMBDA_FUNCTION_NAME, images);
 */
export function lambdaPageRunner(
  lambda: LambdaClient,
  functionName: string,
  images: ReadonlyMap<StoredMessage, StreamImage>,
): (page: FanOutPage) => Promise<FanOutResult> {
  return async (page) => {
    const event: FanOutPageEvent = {
      fanOutPage: {
        images: page.messages.map((m) => images.get(m)).filter((i): i is StreamImage => i !== undefined),
        matches: page.matches,
      },
    };
    const result = await lambda.send(
      new InvokeCommand({
        FunctionName: functionName,
        InvocationType: 'RequestResponse',
        Payload: Buffer.from(JSON.stringify(event)),
      }),
    );
    const body = result.Payload ? Buffer.from(result.Payload).toString('utf8') : '';
    if (result.FunctionError) {
      throw new Error(
        `fan-out page on ${functionName} failed (${result.FunctionError}): ${body.slice(0, 500)}`,
      );
    }
    return JSON.parse(body) as FanOutResult;
  };
}
