import {
  type ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  GoneException,
} from '@aws-sdk/client-apigatewaymanagementapi';
import type { ClientGateway, SendResult } from '../ports.js';
import type { ManagementPoster } from './signed-post.js';

const isGone = (error: unknown) =>
  error instanceof GoneException || (error as Error).name === 'GoneException';

/**
 * Reaches clients through API Gateway's management API (or the emulator's):
 * posts through the signed poster, the rarer calls through the SDK client.
 *
 * @example
 * const gateway = new ManagementApiGateway(client, new ManagementPoster({ endpoint, region, credentials, sockets: 100 }));
 * await gateway.send(connectionId, 'IAIAAA==');
 */
export class ManagementApiGateway implements ClientGateway {
  constructor(
    private readonly client: ApiGatewayManagementApiClient,
    private readonly poster: ManagementPoster,
  ) {}

  send(connectionId: string, frame: string): Promise<SendResult> {
    return this.poster.post(connectionId, frame);
  }

  async isConnected(connectionId: string): Promise<boolean> {
    try {
      await this.client.send(new GetConnectionCommand({ ConnectionId: connectionId }));
      return true;
    } catch (error) {
      if (isGone(error)) return false;
      throw error;
    }
  }

  async close(connectionId: string): Promise<boolean> {
    try {
      await this.client.send(new DeleteConnectionCommand({ ConnectionId: connectionId }));
      return true;
    } catch (error) {
      if (isGone(error)) return false;
      throw error;
    }
  }
}
