import { createServer, type Server } from 'node:http';

// HTTP probes for load balancers and orchestrators:
//   /healthz  200 while the process runs (liveness)
//   /readyz   200 when this process accepts clients and reaches its shared state, else 503
// In Redis mode every worker listens on the shared port (node:cluster), so a probe is answered
// by one of the instance's workers; they share one Redis and drain together.

export const HEALTH_PATHS = { alive: '/healthz', ready: '/readyz' } as const;

export interface Readiness {
  ready: boolean;
  [detail: string]: unknown;
}

export async function startHealthServer(host: string, port: number, readiness: () => Readiness): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path === HEALTH_PATHS.alive) return respond(response, 200, { alive: true });
    if (path === HEALTH_PATHS.ready) {
      const state = readiness();
      return respond(response, state.ready ? 200 : 503, state);
    }
    respond(response, 404, { error: 'not found' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, resolve);
  });
  return server;
}

function respond(response: import('node:http').ServerResponse, status: number, body: object): void {
  response.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  response.end(JSON.stringify(body));
}
