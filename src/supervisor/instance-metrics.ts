import { AggregatorRegistry, type Registry } from 'prom-client';
import { metrics as ownMetrics, PRIMARY_METRICS, registry } from '../metrics.js';
import type { Metrics } from './ipc.js';

// /metrics for a whole Redis-mode instance: the primary asks every worker for its registry
// over IPC and sums them with its own. A worker that does not answer within SCRAPE_WAIT_MS is
// counted (chatline_scrape_workers_unanswered) and its last answer used instead, so a stuck
// worker never fails the scrape. Counters stay monotonic across worker restarts: what a worker
// had counted when it last answered is kept after it exits (its gauges are not), so a
// re-forked worker starting from zero neither resets the instance's counters nor doubles them.

const SCRAPE_WAIT_MS = 1000;

export interface ScrapedWorker {
  readonly id: number;
  /** Sends a metrics request; false when the worker cannot be asked (disconnected). */
  ask(request: number): boolean;
  /** What it answered last time, if ever. */
  lastMetrics: Metrics | undefined;
}

export class InstanceMetrics {
  private nextRequest = 0;
  private readonly waiting = new Map<number, { answers: Map<number, Metrics>; expected: number; done: () => void }>();
  /** Counters and histograms of workers that exited, summed. */
  private retired: Metrics = [];

  async collect(workers: ScrapedWorker[]): Promise<{ text: string; contentType: string }> {
    const request = ++this.nextRequest;
    const answers = new Map<number, Metrics>();
    const asked = workers.filter((worker) => worker.ask(request));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, SCRAPE_WAIT_MS);
      this.waiting.set(request, { answers, expected: asked.length, done: () => { clearTimeout(timer); resolve(); } });
      if (asked.length === 0) resolve();
    });
    this.waiting.delete(request);
    let unanswered = 0;
    const perWorker: Metrics[] = [];
    for (const worker of workers) {
      const answer = answers.get(worker.id);
      if (answer) worker.lastMetrics = answer;
      else unanswered++;
      if (worker.lastMetrics) perWorker.push(worker.lastMetrics);
    }
    ownMetrics.workersUnanswered.set(unanswered);
    // The primary's registry has every metric, at zero but for the few it counts itself.
    const own = (await registry.getMetricsAsJSON()).filter((metric) => PRIMARY_METRICS.has(metric.name));
    const summed: Registry = AggregatorRegistry.aggregate([own as Metrics, this.retired, ...perWorker]);
    return { text: await summed.metrics(), contentType: summed.contentType };
  }

  answered(workerId: number, request: number, metrics: Metrics): void {
    const waiting = this.waiting.get(request);
    if (!waiting) return;
    waiting.answers.set(workerId, metrics);
    if (waiting.answers.size >= waiting.expected) waiting.done();
  }

  /** A worker exited: keep what it counted. */
  async retire(last: Metrics | undefined): Promise<void> {
    if (!last) return;
    // prom-client's types call this an enum; at run time it is the name ('counter', 'gauge', …).
    const counts = last.filter((metric) => ['counter', 'histogram'].includes(String(metric.type)));
    this.retired = await AggregatorRegistry.aggregate([this.retired, counts]).getMetricsAsJSON() as Metrics;
  }
}
