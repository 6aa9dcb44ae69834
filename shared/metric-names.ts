/**
 * The broker's own CloudWatch metrics: what the functions emit (as Embedded Metric Format, through
 * Powertools Metrics) and the dashboard graphs, named in one place so the two cannot drift apart.
 */

/** Namespace of the broker's metrics unless the deployment names another. */
export const defaultMetricsNamespace = 'NimbusMQTT';

/** The `service` dimension every broker metric carries (Powertools' `POWERTOOLS_SERVICE_NAME`). */
export const metricsServiceName = 'nimbus-mqtt';

/** Metric names, by what they count. */
export const brokerMetricNames = {
  /** PUBLISH packets the message function handled (stored for fan-out, or answered per QoS). */
  publishesAccepted: 'PublishesAccepted',
  /** Deliveries of a message to one subscriber, by outcome (shared/broker/delivery.ts). */
  deliveries: {
    sent: 'DeliveriesSent',
    queued: 'DeliveriesQueued',
    dropped: 'DeliveriesDropped',
    gone: 'DeliveriesGone',
  },
  /** Milliseconds from a message being published (stored) to the fan-out handling it. */
  fanoutLag: 'FanoutLag',
  /** WebSocket handshakes `$connect` accepted. */
  connectionsOpened: 'ConnectionsOpened',
  /** WebSocket handshakes `$connect` refused (no `mqtt` subprotocol). */
  connectionsRefused: 'ConnectionsRefused',
} as const;
