import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';

/**
 * Payloads below this many bytes are stored as sent: with the message's other attributes their item
 * stays within the first 1 KB write unit, so compressing could not save a unit.
 */
export const compressFromBytes = 512;

/** The one encoding written: Brotli, for the text (JSON, CSV, logs) that telemetry mostly is. */
export const brotliEncoding = 'br';

/** A payload as a Messages item holds it: `payloadEncoding` names how it was packed, when it was. */
export interface StoredPayload {
  readonly payload: Uint8Array;
  readonly payloadEncoding?: typeof brotliEncoding;
}

/**
 * The payload to store: Brotli-compressed when it is at least `compressFromBytes` and compressing
 * shrinks it (DynamoDB bills a write unit per started KB), otherwise as it is. Quality 4 packs 16 KB
 * of JSON to under 1 KB in about half a millisecond; the top qualities gain a few percent for
 * a hundred times the CPU.
 *
 * @example
 * packPayload(Buffer.from('{"t":1}'.repeat(1000))).payloadEncoding; // 'br'
 * packPayload(randomBytes(16_384)).payloadEncoding; // undefined: random bytes do not shrink
 */
export function packPayload(payload: Uint8Array): StoredPayload {
  if (payload.byteLength < compressFromBytes) return { payload };
  const packed = brotliCompressSync(payload, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 4,
      [constants.BROTLI_PARAM_SIZE_HINT]: payload.byteLength,
    },
  });
  return packed.byteLength < payload.byteLength
    ? { payload: packed, payloadEncoding: brotliEncoding }
    : { payload };
}

/**
 * The payload as it was published, from what `packPayload` stored. An encoding this code does not
 * know (written by a newer version) throws, so the record is retried rather than delivered garbled.
 *
 * @example
 * unpackPayload(packed.payload, packed.payloadEncoding); // the original bytes
 */
export function unpackPayload(stored: Uint8Array, encoding: unknown): Uint8Array {
  if (encoding === undefined || encoding === null) return stored;
  if (encoding === brotliEncoding) return new Uint8Array(brotliDecompressSync(stored));
  throw new Error(`stored payload has encoding ${String(encoding)}, which this version cannot read`);
}
