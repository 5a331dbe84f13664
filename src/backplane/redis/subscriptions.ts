import type { Cluster, Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import type { Logger } from '../../log.js';
import { metrics } from '../../metrics.js';
import { BackplaneUnavailableError } from '../errors.js';
import type { RedisClient } from './client.js';

/** How often restored() looks whether the connection is back. */
const STATUS_POLL_MS = 20;

// The delivery connection's channels: one per user this worker holds (its inbox), one per room
// it holds members of (its feed), and its own probe channel. Each channel is subscribed while
// anyone here holds it. Holding and releasing are batched per event-loop turn: the logins and
// joins of one turn cost one SUBSCRIBE, the logouts and parts one UNSUBSCRIBE.
//
// When the connection is lost (Redis cut it for its output buffer, a network blip, CLIENT
// KILL), everything sent meanwhile is lost: this module notices at once, subscribes every held
// channel again as soon as the connection is back, logs and counts it, and tells its owner,
// which must rebuild what it derived from the lost stream.

interface Held {
  holders: number;
  /** Settles when Redis confirmed the subscription. */
  ready: Promise<void>;
}

interface Pending {
  resolve(): void;
  reject(error: unknown): void;
}

export interface SubscriptionEvents {
  message(channel: string, message: Buffer): void;
  /** Every held channel is subscribed again after the connection was lost. */
  resubscribed(): void;
}

/** Shard resubscriptions closer together than this are one loss (one failover). */
const SHARD_LOSS_BURST_MS = 5000;
/** Channels per SUBSCRIBE when subscribing everything again; keeps each command small. */
const RESUBSCRIBE_CHUNK = 5000;

export class Subscriptions {
  private readonly held = new Map<string, Held>();
  private toSubscribe = new Map<string, Pending>();
  private toUnsubscribe = new Set<string>();
  private flushScheduled = false;
  private resubscribing: Promise<void> | undefined;
  private lastShardLossAt = Number.NEGATIVE_INFINITY;
  private connectedOnce: boolean;
  /** Channels subscribed for as long as the worker runs (its probe). */
  private permanent: string[] = [];

  constructor(
    private readonly subscriber: RedisClient,
    /** Redis Cluster: shard channels (SSUBSCRIBE), each command within one slot. */
    private readonly sharded: boolean,
    private readonly events: SubscriptionEvents,
    private readonly log: Logger,
  ) {
    // On a cluster, subscribing is only known to work once start() subscribed the first channels.
    this.connectedOnce = !sharded && subscriber.status === 'ready';
    const onMessage = (channel: Buffer, message: Buffer) => events.message(channel.toString('latin1'), message);
    subscriber.on(sharded ? 'smessageBuffer' : 'messageBuffer', onMessage);
    if (sharded) {
      // ioredis keeps shard channels per slot and subscribes them again itself whenever the
      // cluster's shape changes or a shard's connection is replaced; each time it is done it
      // says so. What was published meanwhile on the lost connections is gone.
      subscriber.on('subscribersReady', () => {
        if (!this.connectedOnce) return;
        // One change of the cluster brings a burst of these, one per refresh: counted once.
        const now = performance.now();
        if (now - this.lastShardLossAt > SHARD_LOSS_BURST_MS) {
          metrics.subscriberResubscribes.inc();
          this.log.warn('shard subscriptions were made again after the cluster changed (messages sent meanwhile may be lost)');
        }
        this.lastShardLossAt = now;
        this.events.resubscribed();
      });
      return;
    }
    subscriber.on('ready', () => {
      if (this.connectedOnce) this.resubscribing = this.resubscribeAll();
      this.connectedOnce = true;
    });
  }

  /** Subscribes the channels kept for as long as the worker runs. */
  async start(permanent: string[]): Promise<void> {
    this.permanent = permanent;
    await this.send('subscribe', permanent);
    this.connectedOnce = true;
  }

  /** Replaces the permanent channels (a new worker identity after a fault). */
  async replacePermanent(permanent: string[]): Promise<void> {
    const old = this.permanent;
    this.permanent = permanent;
    await this.send('subscribe', permanent);
    void this.send('unsubscribe', old).catch(() => {});
  }

  get connected(): boolean {
    return this.subscriber.status === 'ready' && this.resubscribing === undefined;
  }

  /** Subscribes for one more holder; resolves once Redis confirmed it, rejects if it cannot be. */
  hold(channel: string): Promise<void> {
    let entry = this.held.get(channel);
    if (entry) {
      entry.holders++;
      return entry.ready;
    }
    // Released this turn and not yet unsubscribed: still subscribed.
    const stillSubscribed = this.toUnsubscribe.delete(channel);
    entry = { holders: 1, ready: stillSubscribed ? Promise.resolve() : this.subscribeSoon(channel) };
    this.held.set(channel, entry);
    const held = entry;
    // A failed subscription is forgotten, so the next holder tries again; its holders do not release it.
    held.ready.catch(() => {
      if (this.held.get(channel) === held) this.held.delete(channel);
    });
    return held.ready;
  }

  /** Drops one holder; unsubscribes (batched) when none is left. Not for a hold that failed. */
  release(channel: string): void {
    const entry = this.held.get(channel);
    if (!entry || --entry.holders > 0) return;
    this.held.delete(channel);
    const pending = this.toSubscribe.get(channel);
    if (pending) {
      // Held and released within one turn: never sent.
      this.toSubscribe.delete(channel);
      pending.resolve();
      return;
    }
    this.toUnsubscribe.add(channel);
    this.scheduleFlush();
  }

  /** Resolves once the connection is up and every held channel subscribed again. */
  async restored(maxWaitMs: number): Promise<void> {
    const deadline = performance.now() + maxWaitMs;
    while (this.subscriber.status !== 'ready' || this.resubscribing) {
      if (performance.now() > deadline) throw new BackplaneUnavailableError('unreachable');
      if (this.resubscribing) await this.resubscribing.catch(() => {});
      else await new Promise((resolve) => setTimeout(resolve, STATUS_POLL_MS));
    }
  }

  /** Drops the connection on purpose (it stopped delivering); it comes back and resubscribes. */
  reconnect(): void {
    this.subscriber.disconnect(true);
  }

  private subscribeSoon(channel: string): Promise<void> {
    const ready = new Promise<void>((resolve, reject) => this.toSubscribe.set(channel, { resolve, reject }));
    this.scheduleFlush();
    return ready;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const unsubscribe = [...this.toUnsubscribe];
      this.toUnsubscribe.clear();
      // Best effort: while Redis is away the subscriptions are gone with the connection anyway.
      if (unsubscribe.length > 0) void this.send('unsubscribe', unsubscribe).catch(() => {});
      const subscribe = this.toSubscribe;
      this.toSubscribe = new Map();
      if (subscribe.size === 0) return;
      this.send('subscribe', [...subscribe.keys()]).then(
        () => { for (const pending of subscribe.values()) pending.resolve(); },
        (error: unknown) => {
          const failure = new BackplaneUnavailableError('unreachable', { cause: error });
          for (const pending of subscribe.values()) pending.reject(failure);
        },
      );
    });
  }

  private async resubscribeAll(): Promise<void> {
    const channels = [...this.permanent, ...this.held.keys()];
    try {
      for (let i = 0; i < channels.length; i += RESUBSCRIBE_CHUNK) {
        await this.send('subscribe', channels.slice(i, i + RESUBSCRIBE_CHUNK));
      }
      metrics.subscriberResubscribes.inc();
      this.log.warn({ channels: channels.length },
        'delivery connection had lost its subscriptions (messages sent meanwhile are lost); subscribed again');
      this.resubscribing = undefined;
      this.events.resubscribed();
    } catch (error) {
      // The connection dropped again; its next 'ready' tries again.
      this.resubscribing = undefined;
      this.log.debug({ err: error }, 'resubscribing failed; will retry on reconnect');
    }
  }

  private async send(command: 'subscribe' | 'unsubscribe', channels: string[]): Promise<void> {
    if (channels.length === 0) return;
    if (!this.sharded) {
      await (this.subscriber as Redis)[command](...channels);
      return;
    }
    // SSUBSCRIBE takes channels of one slot per command.
    const bySlot = new Map<number, string[]>();
    for (const channel of channels) {
      const slot = calculateSlot(channel);
      bySlot.set(slot, [...(bySlot.get(slot) ?? []), channel]);
    }
    const cluster = this.subscriber as Cluster;
    await Promise.all([...bySlot.values()].map((group) =>
      (command === 'subscribe' ? cluster.ssubscribe(...group) : cluster.sunsubscribe(...group))));
  }
}
