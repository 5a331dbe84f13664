import { connect, createServer, type Server, type Socket } from 'node:net';

// A TCP proxy in front of Redis that can go silent on chosen connections: it keeps them open
// and keeps forwarding what the client sends, but drops everything Redis sends back. That is
// the failure a healthy-looking subscriber that delivers nothing shows.

interface Link {
  client: Socket;
  upstream: Socket;
  /** What the client sent first (ioredis starts with CLIENT SETNAME <connection name>). */
  opening: string;
  silenced: boolean;
}

export class RedisProxy {
  private readonly links = new Set<Link>();
  private readonly server: Server = createServer((client) => this.forward(client));
  port = 0;

  private constructor(private readonly redisPort: number) {}

  static async start(redisPort: number): Promise<RedisProxy> {
    const proxy = new RedisProxy(redisPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    proxy.port = (proxy.server.address() as { port: number }).port;
    return proxy;
  }

  private forward(client: Socket): void {
    const upstream = connect({ port: this.redisPort, host: '127.0.0.1' });
    const link: Link = { client, upstream, opening: '', silenced: false };
    this.links.add(link);
    client.on('data', (data: Buffer) => {
      if (link.opening.length < 512) link.opening += data.toString('latin1');
      upstream.write(data);
    });
    upstream.on('data', (data: Buffer) => {
      if (!link.silenced) client.write(data);
    });
    const close = () => {
      this.links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Silences every open connection whose opening bytes contain `marker`; returns how many. */
  silence(marker: string): number {
    let count = 0;
    for (const link of this.links) {
      if (link.opening.includes(marker)) {
        link.silenced = true;
        count++;
      }
    }
    return count;
  }

  async stop(): Promise<void> {
    for (const link of this.links) {
      link.client.destroy();
      link.upstream.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
