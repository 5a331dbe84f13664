import type { MetricObjectWithValues, MetricValue } from 'prom-client';

// What a worker and its primary say to each other over node:cluster's IPC channel. Every
// message carries a `chatline` tag so that node's own internal messages are never mistaken
// for ours.

/** A worker's state as the primary (and /readyz) shows it. */
export type WorkerState = 'starting' | 'serving' | 'draining';

export interface WorkerStatus {
  state: WorkerState;
  /** Whether the worker's shared state works, and a word saying why not. */
  backplane: { up: boolean; state: string };
  clients: number;
}

export type Metrics = MetricObjectWithValues<MetricValue<string>>[];

export type WorkerMessage =
  /** Sent every STATUS_INTERVAL_MS from the worker's event loop: its state, and proof it runs. */
  | { chatline: 'status'; status: WorkerStatus }
  /** This worker cannot start and would fail again if restarted: the instance should stop. */
  | { chatline: 'fatal'; message: string }
  | { chatline: 'metrics'; request: number; metrics: Metrics };

export type PrimaryMessage = { chatline: 'metrics?'; request: number };

export const STATUS_INTERVAL_MS = 1000;

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  return typeof message === 'object' && message !== null && 'chatline' in message;
}

/**
 * Sends to the primary if it is still there. The channel can close at any moment (the primary
 * stopping while this worker starts): that is not an error worth a stack trace.
 */
export function tellPrimary(message: WorkerMessage, sent: () => void = () => {}): void {
  if (!process.connected || !process.send) return sent();
  process.send(message, undefined, undefined, () => sent());
}
