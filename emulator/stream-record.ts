import type { _Record, AttributeValue as StreamAttributeValue } from '@aws-sdk/client-dynamodb-streams';
import type { AttributeValue, DynamoDBRecord, StreamRecord } from 'aws-lambda';

/**
 * The SDK's stream record in the shape Lambda hands to a function (JSON: binary as base64).
 *
 * @example
 * const event: DynamoDBStreamEvent = { Records: out.Records.map((r) => toLambdaRecord(r, streamArn, 'us-east-1')) };
 */
export function toLambdaRecord(
  record: _Record,
  streamArn: string,
  region: string | undefined,
): DynamoDBRecord {
  const source = record.dynamodb ?? {};
  const dynamodb: StreamRecord = {};
  if (source.ApproximateCreationDateTime) {
    dynamodb.ApproximateCreationDateTime = source.ApproximateCreationDateTime.getTime() / 1000;
  }
  if (source.Keys) dynamodb.Keys = toLambdaImage(source.Keys);
  if (source.NewImage) dynamodb.NewImage = toLambdaImage(source.NewImage);
  if (source.OldImage) dynamodb.OldImage = toLambdaImage(source.OldImage);
  if (source.SequenceNumber !== undefined) dynamodb.SequenceNumber = source.SequenceNumber;
  if (source.SizeBytes !== undefined) dynamodb.SizeBytes = source.SizeBytes;
  if (source.StreamViewType) dynamodb.StreamViewType = source.StreamViewType;
  const converted: DynamoDBRecord = {
    eventID: record.eventID,
    eventName: record.eventName,
    eventVersion: '1.1',
    eventSource: 'aws:dynamodb',
    // DynamoDB Local reports the region as 'ddblocal'; a real record names the table's region.
    awsRegion: region ?? record.awsRegion,
    dynamodb,
    eventSourceARN: streamArn,
  };
  if (record.userIdentity) converted.userIdentity = { ...record.userIdentity };
  return converted;
}

function toLambdaImage(image: Record<string, StreamAttributeValue>): Record<string, AttributeValue> {
  return Object.fromEntries(Object.entries(image).map(([name, value]) => [name, toLambdaValue(value)]));
}

function toLambdaValue(value: StreamAttributeValue): AttributeValue {
  if (value.S !== undefined) return { S: value.S };
  if (value.N !== undefined) return { N: value.N };
  if (value.B !== undefined) return { B: base64(value.B) };
  if (value.BOOL !== undefined) return { BOOL: value.BOOL };
  if (value.NULL !== undefined) return { NULL: value.NULL };
  if (value.SS !== undefined) return { SS: [...value.SS] };
  if (value.NS !== undefined) return { NS: [...value.NS] };
  if (value.BS !== undefined) return { BS: value.BS.map(base64) };
  if (value.L !== undefined) return { L: value.L.map(toLambdaValue) };
  if (value.M !== undefined) return { M: toLambdaImage(value.M) };
  throw new Error(`unknown attribute value ${JSON.stringify(Object.keys(value))}`);
}

/**
 * Binary attribute bytes as base64, the way a JSON event carries them.
 *
 * @example
 * base64(new Uint8Array([1, 2, 3])); // 'AQID'
 */
export function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}
