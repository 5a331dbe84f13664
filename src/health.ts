import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { listenOn } from './listen.js';
import type { WorkerState, WorkerStatus } from './supervisor/ipc.js';

// HTTP on HEALTH_PORT, answered for the whole instance (by the primary in Redis mode, by the
// one process embedded), never by whichever worker happens to take the request:
//   /healthz  200 unless a worker is stuck (liveness: restart the instance if the watchdog cannot)
//   /readyz   200 when every worker serves, reaches its shared state and the instance is not
//             draining, else 503; the JSON body shows each worker and the instance's clients
//   /metrics  Prometheus text for the whole instance

export const HEALTH_PATHS = { alive: '/healthz', ready: '/readyz', metrics: '/metrics' } as const;

export interface WorkerReport extends WorkerStatus {
  pid: number;
  /** Did not report within the watchdog time: its event loop is stuck (or it is stopped). */
  stuck: boolean;
  /** Since its last status. */
  lastSeenMs: number;
}

export interface InstanceReport {
  draining: boolean;
  /** Workers the instance should have serving: WORKERS, or 1 embedded. */
  expectedWorkers: number;
  workers: WorkerReport[];
}

export interface HealthSource {
  report(): InstanceReport;
  /** The instance's metrics in Prometheus' text format, and its content type. */
  metrics(): Promise<{ text: string; contentType: string }>;
}

/** A worker whose last status is older than this is not counted as serving (it reports every second). */
export const STALE_STATUS_MS = 3000;

export function readiness(report: InstanceReport): { ready: boolean; [detail: string]: unknown } {
  const serving = report.workers.filter((worker) => worker.state === 'serving' && worker.backplane.up
    && worker.lastSeenMs <= STALE_STATUS_MS);
  return {
    ready: !report.draining && serving.length >= report.expectedWorkers,
    draining: report.draining,
    clients: report.workers.reduce((sum, worker) => sum + worker.clients, 0),
    workers: report.workers.map(describe),
  };
}

export function liveness(report: InstanceReport): { alive: boolean; [detail: string]: unknown } {
  return { alive: !report.workers.some((worker) => worker.stuck), workers: report.workers.map(describe) };
}

function describe(worker: WorkerReport): Record<string, unknown> {
  const state: WorkerState | 'stuck' | 'unresponsive' = worker.stuck ? 'stuck'
    : worker.lastSeenMs > STALE_STATUS_MS ? 'unresponsive' : worker.state;
  return { pid: worker.pid, state, sharedState: worker.backplane.state, clients: worker.clients, lastSeenMs: worker.lastSeenMs };
}

export async function startHealthServer(host: string, port: number, source: HealthSource): Promise<Server> {
  const server = createServer((request, response) => void answer(request, response, source));
  await listenOn(server, host, port, 'HEALTH_PORT');
  return server;
}

async function answer(request: IncomingMessage, response: ServerResponse, source: HealthSource): Promise<void> {
  const path = (request.url ?? '').split('?')[0];
  try {
    if (path === HEALTH_PATHS.alive) {
      const state = liveness(source.report());
      return respond(response, state.alive ? 200 : 503, state);
    }
    if (path === HEALTH_PATHS.ready) {
      const state = readiness(source.report());
      return respond(response, state.ready ? 200 : 503, state);
    }
    if (path === HEALTH_PATHS.metrics) {
      const { text, contentType } = await source.metrics();
      response.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' });
      response.end(text);
      return;
    }
    respond(response, 404, { error: 'not found' });
  } catch (error) {
    respond(response, 500, { error: (error as Error).message });
  }
}

function respond(response: ServerResponse, status: number, body: object): void {
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  response.end(JSON.stringify(body));
}
