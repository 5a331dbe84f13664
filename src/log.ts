import { hostname } from 'node:os';
import { pino, type Logger } from 'pino';

// The one logger. JSON lines on stdout; callers add bindings (worker, connection) with child().

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid, hostname: hostname() }, timestamp: pino.stdTimeFunctions.isoTime });
}
