import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../log.js';

// MAX_CONNECTIONS_PER_IP counts per instance (one process embedded; a primary and all its
// workers in Redis mode), the way nginx's limit_conn counts across its workers: an operator
// who writes 10 means 10 from one address on this machine, not 10 times the number of workers
// that the primary happens to spread them over. In Redis mode the primary holds the counts and
// every worker asks it over node:cluster's IPC before it admits a client (a round trip of
// tens of microseconds, made only when the limit is set). Counts are kept per worker, so a
// worker that dies gives its addresses back with it.
//
// Across instances nothing is shared: behind a balancer spreading one address over N
// instances, an address may hold up to N × the limit in the cluster. A cluster-wide cap is the
// balancer's to enforce (HAProxy's src_conn_cur); docs/security.md says so.

/** Gives a slot back; calling it more than once gives back only once. */
export type Release = () => void;

export interface AddressSlots {
  /** Takes a slot for a connection from `address`; undefined when the address already has the limit. */
  acquire(address: string): Release | undefined | Promise<Release | undefined>;
}

/** Counts in this process: embedded mode, and the primary's store. */
export class LocalAddressSlots implements AddressSlots {
  private readonly counts = new Map<string, number>();

  constructor(private readonly limit: number) {}

  acquire(address: string): Release | undefined {
    const count = this.counts.get(address) ?? 0;
    if (count >= this.limit) return undefined;
    this.counts.set(address, count + 1);
    return once(() => this.release(address));
  }

  private release(address: string): void {
    const left = (this.counts.get(address) ?? 1) - 1;
    if (left <= 0) this.counts.delete(address);
    else this.counts.set(address, left);
  }
}

type SlotRequest = { chatline: 'address-slot'; op: 'acquire'; request: number; address: string }
  | { chatline: 'address-slot'; op: 'release'; address: string };
type SlotAnswer = { chatline: 'address-slot-answer'; request: number; granted: boolean };

/** A primary that does not answer this fast is not holding the door: admit, and say so once. */
const ANSWER_WAIT_MS = 1000;

/** A worker's side: asks its primary. */
export class InstanceAddressSlots implements AddressSlots {
  private nextRequest = 0;
  private readonly waiting = new Map<number, { address: string; resolve(release: Release | undefined): void; timer?: NodeJS.Timeout }>();
  private warned = false;

  constructor(private readonly log: Logger) {
    process.on('message', (message: SlotAnswer) => {
      if (message?.chatline !== 'address-slot-answer') return;
      const waiter = this.waiting.get(message.request);
      if (!waiter) return;
      this.waiting.delete(message.request);
      clearTimeout(waiter.timer);
      const release = message.granted ? once(() => this.send({ chatline: 'address-slot', op: 'release', address: waiter.address })) : undefined;
      waiter.resolve(release);
    });
  }

  acquire(address: string): Promise<Release | undefined> {
    const request = ++this.nextRequest;
    return new Promise((resolve) => {
      if (!this.send({ chatline: 'address-slot', op: 'acquire', request, address })) return resolve(() => {});
      const waiter: { address: string; resolve(release: Release | undefined): void; timer?: NodeJS.Timeout } = { address, resolve };
      this.waiting.set(request, waiter);
      waiter.timer = setTimeout(() => {
        if (!this.warned) {
          this.warned = true;
          this.log.warn({ waitedMs: ANSWER_WAIT_MS }, 'the primary did not answer a MAX_CONNECTIONS_PER_IP check in time; admitting');
        }
        // Admitted now, uncounted; if the primary's grant comes later, it is given back at once.
        resolve(() => {});
        waiter.resolve = (late) => late?.();
      }, ANSWER_WAIT_MS);
    });
  }

  private send(message: SlotRequest): boolean {
    if (!process.connected || !process.send) return false;
    process.send(message, undefined, undefined, () => {});
    return true;
  }
}

function once(action: () => void): Release {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    action();
  };
}

/** The primary's side: one count per address for the whole instance, with what each worker holds. */
export function serveAddressSlots(limit: number, log: Logger): void {
  const slots = new LocalAddressSlots(limit);
  /** Per worker, per address: the releases of the slots it holds. */
  const held = new Map<number, Map<string, Release[]>>();
  cluster.on('message', (worker: Worker, message: SlotRequest) => {
    if (message?.chatline !== 'address-slot') return;
    let byAddress = held.get(worker.id);
    if (!byAddress) held.set(worker.id, byAddress = new Map());
    const releases = byAddress.get(message.address);
    if (message.op === 'acquire') {
      const release = slots.acquire(message.address);
      if (release) {
        if (releases) releases.push(release);
        else byAddress.set(message.address, [release]);
      }
      const reply: SlotAnswer = { chatline: 'address-slot-answer', request: message.request, granted: release !== undefined };
      if (worker.isConnected()) worker.send(reply, undefined, () => {});
      return;
    }
    // Only what this worker holds can be given back by it.
    releases?.pop()?.();
    if (releases?.length === 0) byAddress.delete(message.address);
  });
  // A worker that exits (crash, watchdog, restart) gives back every slot it held.
  cluster.on('exit', (worker: Worker) => {
    for (const releases of held.get(worker.id)?.values() ?? []) for (const release of releases) release();
    held.delete(worker.id);
  });
  log.debug({ limit }, 'counting MAX_CONNECTIONS_PER_IP for the whole instance');
}
