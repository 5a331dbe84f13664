// The one failure a backplane reports to its callers. Anything else escaping a backplane is a
// bug, and the session treats it as one (ERROR INTERNAL ERROR, logged with its stack).

export type UnavailableReason =
  /** No connection to Redis, or a command failed on the way. */
  | 'unreachable'
  /** Redis did not answer in time; the command was fenced, so it cannot take effect later. */
  | 'timeout'
  /** This worker is not sure it still holds its lease, and waits to re-verify it. */
  | 'lease'
  /** The shared state does not know this login (it is being restored after a fault). */
  | 'not-owner'
  /** Redis refused to write (out of memory, read-only replica). */
  | 'not-writable';

export class BackplaneUnavailableError extends Error {
  override name = 'BackplaneUnavailableError';

  constructor(readonly reason: UnavailableReason, options?: { cause?: unknown }) {
    super(`shared state unavailable (${reason})`, options);
  }
}

export function isUnavailable(error: unknown): error is BackplaneUnavailableError {
  return error instanceof BackplaneUnavailableError;
}
