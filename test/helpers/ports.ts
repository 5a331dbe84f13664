import { createServer } from 'node:net';

/** Ports handed out lately by this process: the kernel may offer a just-closed one again. */
const handedOut: number[] = [];
const REMEMBERED = 1000;

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, and not one this process handed out
 * lately: a chat instance's PORT and HEALTH_PORT, or two instances started together, once got
 * the same port and the instance refused to start.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (handedOut.includes(port)) continue;
    handedOut.push(port);
    if (handedOut.length > REMEMBERED) handedOut.shift();
    return port;
  }
}

/** `count` free ports, all different. */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  // freePort never repeats one of its last REMEMBERED ports.
  while (ports.length < count) ports.push(await freePort());
  return ports;
}
