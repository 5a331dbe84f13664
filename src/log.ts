import { hostname } from 'node:os';
import { format } from 'node:util';
import { pino, type Logger } from 'pino';

// The one logger. JSON lines on stdout; callers add bindings (worker, connection) with child().
// Written asynchronously: lines logged while a write is under way leave together in the next
// one, so a burst of connections costs a few writes, not two each. pino flushes what is
// buffered when the process exits; only a kill -9 can lose the last lines.

export type { Logger };

export function createLogger(level: string): Logger {
  return pino(
    { level, base: { pid: process.pid, hostname: hostname() }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 1, sync: false }),
  );
}

/**
 * Some libraries print with console.warn/console.error (ioredis' "[WARN] …" lines): those go
 * through the logger too, so the output stays one JSON object per line.
 */
export function routeConsoleToLogger(log: Logger): void {
  const library = log.child({ source: 'library' });
  console.warn = (...args: unknown[]) => library.warn(format(...args));
  console.error = (...args: unknown[]) => library.error(format(...args));
}
