import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { NimbusBroker, type NimbusBrokerProps } from './nimbus-broker.js';

export interface NimbusStackProps extends StackProps, NimbusBrokerProps {}

/** A stack holding one Nimbus MQTT broker, with its URLs as outputs. */
export class NimbusStack extends Stack {
  readonly broker: NimbusBroker;

  constructor(scope: Construct, id: string, props: NimbusStackProps = {}) {
    super(scope, id, props);
    this.broker = new NimbusBroker(this, 'Broker', props);
    new CfnOutput(this, 'WebSocketUrl', {
      value: this.broker.webSocketUrl,
      description: 'MQTT clients connect here (subprotocol mqtt, base64 text frames)',
    });
    new CfnOutput(this, 'ManagementEndpoint', {
      value: this.broker.managementEndpoint,
      description: 'API Gateway Management API endpoint of the stage',
    });
    if (this.broker.usersTable) {
      new CfnOutput(this, 'UsersTableName', {
        value: this.broker.usersTable.tableName,
        description: 'Manage users with: npx nimbus users add <name> --table <this> --region <region>',
      });
    }
    if (this.broker.domainName) {
      new CfnOutput(this, 'CustomDomainTarget', {
        value: this.broker.domainName.regionalDomainName,
        description: 'Point a CNAME (or alias) for the custom domain at this name',
      });
    }
  }
}
