import { Counter, Gauge, Histogram, Registry } from 'prom-client';

// Every Prometheus metric chatline exports, in one registry per process. Code counts inline
// through these (metrics.logins.inc(...)) rather than threading a metrics object through
// constructors. In Redis mode each worker fills its own registry and the primary sums them
// (see supervisor/instance-metrics.ts); in embedded mode the one process serves its own.
//
// Label values are fixed sets named here, so a scrape never grows without bound.

export const registry = new Registry();

/** Why a client connection ended. */
export type CloseReason =
  | 'client' | 'quit' | 'slow_reader' | 'output_shed' | 'rate_abuse' | 'idle' | 'login_timeout'
  | 'shutdown' | 'server_full' | 'per_ip_limit' | 'proxy_header' | 'tls_handshake' | 'watchdog' | 'worker_exit';

export type CommandResult = 'ok' | 'error' | 'unavailable' | 'internal_error';

/** Read when scraped rather than set as things happen: see observeBackplane. */
let backplaneReadings = { up: () => false, probeLagSeconds: () => 0 };

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
  new Counter<L>({ name: `chatline_${name}`, help, labelNames, registers: [registry] });
/** How a Redis-mode instance combines a gauge over its workers: sum unless said otherwise. */
type Aggregator = 'sum' | 'min' | 'max';
const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = [], aggregator: Aggregator = 'sum') =>
  new Gauge<L>({ name: `chatline_${name}`, help, labelNames, aggregator, registers: [registry] });
const histogram = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
  new Histogram<L>({ name: `chatline_${name}`, help, labelNames, buckets: LATENCY_BUCKETS, registers: [registry] });

export const metrics = {
  connectionsOpen: gauge('connections_open', 'Client connections open now.'),
  connectionsOpened: counter('connections_opened_total', 'Client connections accepted.'),
  connectionsClosed: counter('connections_closed_total', 'Client connections ended, by reason.', ['reason']),
  logins: counter('logins_total', 'LOGIN commands that reached the backplane (or found the session logged in), by result: ok, taken, already_logged_in.', ['result']),
  commands: counter('commands_total', 'Commands answered, by command keyword and result.', ['command', 'result']),
  commandDuration: histogram('command_duration_seconds', 'From a command being read to its reply being ready, by command.', ['command']),
  messagesAccepted: counter('messages_accepted_total', 'MSG commands answered OK, by kind: dm or room.', ['kind']),
  deliveriesWritten: counter('deliveries_written_total', 'GOTUSERMSG and GOTROOMMSG lines written to client sockets.'),
  deliveriesDropped: counter('deliveries_dropped_total',
    'Deliveries lost, by reason: gone (reached this worker for a login it no longer has), unpublished (Redis Cluster: a member\'s node did not take a room message).',
    ['reason']),
  pendingOutputBytes: gauge('pending_output_bytes', 'Bytes written to client sockets and not yet sent.'),
  rateLimited: counter('rate_limited_total', 'Commands refused with ERROR RATE LIMITED.'),
  internalErrors: counter('internal_errors_total', 'Commands that failed with a bug (answered ERROR INTERNAL ERROR).'),
  redisDuration: histogram('redis_roundtrip_seconds', 'Round trip of a heartbeat to Redis and back.'),
  redisReconnects: counter('redis_reconnects_total', 'Connections to Redis made again after being lost, by role: commands or deliveries.', ['role']),
  subscriberResubscribes: counter('subscriber_resubscribes_total', 'Times the delivery connection lost its subscriptions and made them again.'),
  backplaneUp: new Gauge({
    name: 'chatline_backplane_up',
    help: 'Workers whose shared state is reachable and writable and who hold their lease (1 per worker, summed over an instance).',
    registers: [registry],
    collect() { this.set(backplaneReadings.up() ? 1 : 0); },
  }),
  probeLag: new Gauge({
    name: 'chatline_pubsub_probe_lag_seconds',
    help: 'Age of the last probe a worker saw come back through its own subscription (the worst worker of an instance).',
    aggregator: 'max',
    registers: [registry],
    collect() { this.set(backplaneReadings.probeLagSeconds()); },
  }),
  lateEffects: counter('late_effects_total', 'Commands answered SERVICE UNAVAILABLE whose effect Redis applied anyway (undone where possible), by kind.', ['kind']),
  reconciles: counter('reconciles_total', 'Times this worker made the shared state match its live sessions again.'),
  deadWorkersReaped: counter('dead_workers_reaped_total', 'Dead workers whose sessions this worker released.'),
  leaseLosses: counter('lease_losses_total', 'Times this worker found it had been taken for dead.'),
  workerRestarts: counter('worker_restarts_total', 'Worker processes started again after one exited (primary only).'),
  watchdogKills: counter('watchdog_kills_total', 'Workers killed by the primary for not answering within WATCHDOG_MS.'),
  workersUnanswered: gauge('scrape_workers_unanswered', 'Workers that did not answer this scrape in time (their last numbers are used).'),
  workers: gauge('workers', 'Worker processes by state: serving, starting, stuck.', ['state']),
} as const;

/** Where the backplane gauges are read from at scrape time: the process's backplane. */
export function observeBackplane(readings: typeof backplaneReadings): void {
  backplaneReadings = readings;
}

/** What a Redis-mode primary counts itself; every other metric comes from its workers. */
export const PRIMARY_METRICS: ReadonlySet<string> = new Set([
  metrics.workerRestarts, metrics.watchdogKills, metrics.workersUnanswered, metrics.workers, metrics.connectionsClosed,
].map((metric) => (metric as unknown as { name: string }).name));
