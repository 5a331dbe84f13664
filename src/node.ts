import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { MemoryBackplane, MemoryState } from './backplane/memory.js';
import { RedisBackplane } from './backplane/redis/index.js';
import type { Backplane } from './backplane/types.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import { type AddressSlots, InstanceAddressSlots, LocalAddressSlots } from './net/address-slots.js';
import { loadSocketOptions } from './net/keepalive.js';
import { TlsCertificates } from './net/tls-certificates.js';
import { observeBackplane } from './metrics.js';
import { ChatServer } from './server.js';
import type { WorkerState, WorkerStatus } from './supervisor/ipc.js';

// One serving process: a backplane plus the chat listeners, with a graceful stop. Embedded, it
// is the whole service; in Redis mode it is one worker among many (worker.ts tells its primary).

/** How long a stop waits for a shared state still being reached when it came. */
const STARTING_STOP_WAIT_MS = 1000;

export class ChatNode {
  private state: WorkerState = 'starting';
  private backplane: Backplane | undefined;
  /** The shared state being reached, while start() waits for it. */
  private connecting: Promise<Backplane> | undefined;
  private readonly server: ChatServer;
  private tls: TlsCertificates | undefined;
  readonly log: Logger;

  constructor(private readonly config: Config, rootLog: Logger) {
    const tag = randomBytes(5).toString('base64url');
    this.log = rootLog.child({ worker: tag });
    // A Redis-mode worker counts addresses with its primary, for the whole instance.
    const addressSlots: AddressSlots = cluster.isWorker
      ? new InstanceAddressSlots(this.log)
      : new LocalAddressSlots(config.maxConnectionsPerIp);
    this.server = new ChatServer({ tag, log: this.log, limits: config, proxyProtocol: config.proxyProtocol, addressSlots });
  }

  /** Reaches the shared state (waiting for Redis as long as it takes), then listens. */
  async start(): Promise<void> {
    const { config } = this;
    await loadSocketOptions(this.log);
    // A certificate that cannot be used stops the start before anything waits on Redis.
    if (config.tls) this.tls = new TlsCertificates(config.tls, this.log);
    this.connecting = config.redis
      ? RedisBackplane.connect({
        redis: config.redis, maxRoomsPerUser: config.maxRoomsPerUser, maxRoomMembers: config.maxRoomMembers,
        nodeTtlMs: config.nodeTtlMs, log: this.log,
      })
      : Promise.resolve(new MemoryBackplane(new MemoryState(), config));
    this.backplane = await this.connecting;
    // Stopped meanwhile: stop() leaves the shared state; nothing is to be served.
    if (this.state === 'draining') return;
    const backplane = this.backplane;
    observeBackplane({
      up: () => backplane.status().up,
      probeLagSeconds: () => (backplane instanceof RedisBackplane ? backplane.probeLagSeconds() : 0),
    });
    let address;
    let tlsAddress;
    try {
      address = await this.server.listen(this.backplane, config.host, config.port);
      tlsAddress = this.tls ? await this.server.listenTls(this.backplane, config.host, config.tls!.port, this.tls) : undefined;
    } catch (error) {
      // Leave the cluster at once, so nobody has to reap a worker that never served.
      await this.backplane.close();
      throw error;
    }
    if (this.state === 'starting') this.state = 'serving';
    this.log.info({
      host: address.address, port: address.port, ...(tlsAddress ? { tlsPort: tlsAddress.port } : {}),
      ...(config.proxyProtocol ? { proxyProtocol: true } : {}),
    }, 'listening');
  }

  status(): WorkerStatus {
    return {
      state: this.state,
      backplane: this.backplane?.status() ?? { up: false, state: 'connecting' },
      clients: this.server.clientCount,
    };
  }

  /** Drains: not ready at once, every client told and logged out, then the shared state left. */
  async stop(signal: string): Promise<void> {
    if (this.state === 'draining') return;
    this.state = 'draining';
    const { shutdownGraceMs } = this.config;
    // Armed before anything that could block (even a log write), so the stop always ends.
    const overdue = setTimeout(() => {
      this.log.error({ clients: this.server.clientCount }, 'graceful stop overran SHUTDOWN_GRACE_MS; exiting now');
      process.exit(1);
    }, shutdownGraceMs);
    overdue.unref();
    this.log.info({ signal, clients: this.server.clientCount }, 'shutting down');
    // Half the grace period at most for spreading the goodbyes; the rest for logouts.
    await this.server.close(shutdownGraceMs / 2);
    this.tls?.close();
    // Told to stop while still reaching Redis: a connection that lands soon has registered this
    // worker, so it leaves again rather than wait to be reaped. One that lands later still is
    // reaped like any dead worker (it holds no sessions).
    const backplane = this.backplane ?? await Promise.race([
      this.connecting?.catch(() => undefined), new Promise<undefined>((resolve) => setTimeout(resolve, STARTING_STOP_WAIT_MS)),
    ]);
    await backplane?.close();
    this.log.info('stopped');
  }
}
