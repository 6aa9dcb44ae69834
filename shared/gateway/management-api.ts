import {
  type ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  GoneException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import type { ClientGateway, SendResult } from '../ports.js';

const isGone = (error: unknown) =>
  error instanceof GoneException || (error as Error).name === 'GoneException';

/**
 * Reaches clients through API Gateway's management API (or the emulator's).
 *
 * @example
 * const gateway = new ManagementApiGateway(new ApiGatewayManagementApiClient({ endpoint }));
 * await gateway.send(connectionId, 'IAIAAA==');
 */
export class ManagementApiGateway implements ClientGateway {
  constructor(private readonly client: ApiGatewayManagementApiClient) {}

  async send(connectionId: string, frame: string): Promise<SendResult> {
    try {
      await this.client.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: frame }));
      return 'sent';
    } catch (error) {
      if (isGone(error)) return 'gone';
      throw error;
    }
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
