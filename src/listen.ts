import type { Server } from 'node:net';

// Binding a port is where most startup failures happen (a port taken, an address not on this
// host, a privileged port). Each one becomes one line that names the setting to change.

export class BindError extends Error {
  override name = 'BindError';
}

const EXPLAINED: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this host',
  EACCES: 'permission denied',
};

/** Listens, or throws a BindError naming `variable` and the address. */
export async function listenOn(server: Server, host: string, port: number, variable: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) => {
      const why = EXPLAINED[error.code ?? ''] ?? error.message;
      reject(new BindError(`cannot listen on ${variable}=${port} (${host}:${port}): ${why}`));
    };
    server.once('error', failed);
    server.listen({ host, port }, () => {
      server.off('error', failed);
      resolve();
    });
  });
}
