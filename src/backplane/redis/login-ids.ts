import { randomBytes } from 'node:crypto';

// A login id is "<worker id>.<count>": the worker that minted it can be read off the id, which
// is how a worker tells its own logins from those it holds under an earlier id of its own.

const DOT = 0x2e;

/** Random, not the pid: pids repeat across containers and restarts, worker ids must not. */
export const newWorkerId = (): string => randomBytes(5).toString('base64url');

export const mintLoginId = (workerId: string, count: number): string => `${workerId}.${count.toString(36)}`;

/** Whether the login id was minted under this worker id. No string is built: every command asks. */
export function mintedBy(loginId: string, workerId: string): boolean {
  return loginId.charCodeAt(workerId.length) === DOT && loginId.startsWith(workerId);
}
