import { BackplaneUnavailableError } from '../errors.js';
import { asBackplaneError } from './client.js';

// "ERROR SERVICE UNAVAILABLE" promises the command had no effect and will have none. Two
// numbers keep that promise while Redis stalls with its connections up:
//  - every command that changes state carries a deadline, COMMAND_BUDGET_MS after it was sent
//    (on Redis' clock, see lease.ts), and its script does nothing if Redis runs it later;
//  - the caller waits up to REPLY_WAIT_MS for the reply, longer than the budget, so the answer
//    is the real outcome whenever Redis answers within that time, and by the time the caller
//    gives up the command can no longer take effect.
// What is left: a command that Redis ran within its budget but whose reply arrives after
// REPLY_WAIT_MS (Redis stalled right after running it, or the reply was lost with a
// connection). The caller still sees such a late reply here and repairs what it can (a LOGIN or
// JOIN is undone); a message that was delivered cannot be taken back, and is counted.

/** How long after it was sent a fenced command may still take effect in Redis. */
export const COMMAND_BUDGET_MS = 1000;
/** How long a caller waits for a reply before answering SERVICE UNAVAILABLE. */
export const REPLY_WAIT_MS = 3000;

/**
 * The reply, or BackplaneUnavailableError after `waitMs`. A reply that arrives after that goes
 * to `onLate` instead, so the caller can undo or count an effect it had already called failed.
 */
export function awaitReply<T>(reply: Promise<T>, onLate: (value: T) => void, waitMs = REPLY_WAIT_MS): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let gaveUp = false;
    const timer = setTimeout(() => {
      gaveUp = true;
      reject(new BackplaneUnavailableError('timeout'));
    }, waitMs);
    reply.then((value) => {
      if (gaveUp) return onLate(value);
      clearTimeout(timer);
      resolve(value);
    }, (error: unknown) => {
      if (gaveUp) return;
      clearTimeout(timer);
      reject(asBackplaneError(error));
    });
  });
}
