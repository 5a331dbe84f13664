import { Counter, Gauge, Histogram, type Metric, type MetricObjectWithValues, type MetricValueWithName, Registry } from 'prom-client';

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
/**
 * A counter with one label for the hot path: increments wait in plain numbers until a scrape
 * hands them to prom-client, instead of a label string built and checked on every call.
 */
function pendingCounter<V extends string>(name: string, help: string, label: string, values: readonly V[]) {
  const pending = new Map<V, number>(values.map((value) => [value, 0]));
  new Counter({
    name: `chatline_${name}`, help, labelNames: [label], registers: [registry],
    collect() {
      for (const [value, count] of pending) {
        if (count === 0) continue;
        this.inc({ [label]: value }, count);
        pending.set(value, 0);
      }
    },
  });
  return { inc: (value: V) => { pending.set(value, pending.get(value)! + 1); } };
}

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
  messagesAccepted: pendingCounter('messages_accepted_total', 'MSG commands answered OK, by kind: dm or room.', 'kind', ['dm', 'room']),
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

/**
 * Commands answered (by keyword and result) and how long each took (by keyword): the hot path,
 * hundreds of thousands a second, where prom-client's labelled inc and observe would build and
 * check a label string on every call. Tallied here in plain numbers instead; prom-client reads
 * them when scraped (chatline_commands_total and chatline_command_duration_seconds).
 */
class CommandTally {
  private readonly byCommand = new Map<string, {
    results: Record<CommandResult, number>;
    /** Observations per bucket of LATENCY_BUCKETS (not cumulative), the last for +Inf. */
    buckets: number[];
    sum: number;
    count: number;
  }>();

  record(command: string, result: CommandResult, seconds: number): void {
    let entry = this.byCommand.get(command);
    if (!entry) {
      entry = { results: { ok: 0, error: 0, unavailable: 0, internal_error: 0 }, buckets: LATENCY_BUCKETS.map(() => 0).concat(0), sum: 0, count: 0 };
      this.byCommand.set(command, entry);
    }
    entry.results[result]++;
    let bucket = 0;
    while (bucket < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[bucket]!) bucket++;
    entry.buckets[bucket]!++;
    entry.sum += seconds;
    entry.count++;
  }

  counts(): MetricValueWithName<'command' | 'result'>[] {
    const values: MetricValueWithName<'command' | 'result'>[] = [];
    for (const [command, { results }] of this.byCommand) {
      for (const [result, value] of Object.entries(results)) if (value > 0) values.push({ labels: { command, result }, value });
    }
    return values;
  }

  durations(name: string): MetricValueWithName<'command' | 'le'>[] {
    const values: MetricValueWithName<'command' | 'le'>[] = [];
    for (const [command, { buckets, sum, count }] of this.byCommand) {
      let cumulative = 0;
      buckets.forEach((observed, i) => {
        cumulative += observed;
        values.push({ metricName: `${name}_bucket`, labels: { command, le: i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i]! : '+Inf' }, value: cumulative });
      });
      values.push({ metricName: `${name}_sum`, labels: { command }, value: sum }, { metricName: `${name}_count`, labels: { command }, value: count });
    }
    return values;
  }
}

const commandTally = new CommandTally();

/** A command answered: counted, and its time from being read to its reply being ready observed. */
export function recordCommand(command: string, result: CommandResult, seconds: number): void {
  commandTally.record(command, result, seconds);
}

/** A metric prom-client reads from the tally when scraped, like any of its own. */
function tallied(name: string, help: string, type: 'counter' | 'histogram', values: () => MetricObjectWithValues<MetricValueWithName<string>>['values']): void {
  const fullName = `chatline_${name}`;
  registry.registerMetric({
    name: fullName, help, type, aggregator: 'sum',
    get: async () => ({ name: fullName, help, type, aggregator: 'sum', values: values() }),
    reset: () => {},
  } as unknown as Metric);
}

tallied('commands_total', 'Commands answered, by command keyword and result.', 'counter', () => commandTally.counts());
tallied('command_duration_seconds', 'From a command being read to its reply being ready, by command.', 'histogram',
  () => commandTally.durations('chatline_command_duration_seconds'));

/** Where the backplane gauges are read from at scrape time: the process's backplane. */
export function observeBackplane(readings: typeof backplaneReadings): void {
  backplaneReadings = readings;
}

/** What a Redis-mode primary counts itself; every other metric comes from its workers. */
export const PRIMARY_METRICS: ReadonlySet<string> = new Set([
  metrics.workerRestarts, metrics.watchdogKills, metrics.workersUnanswered, metrics.workers, metrics.connectionsClosed,
].map((metric) => (metric as unknown as { name: string }).name));
