// cluster-key-slot (ioredis' own dependency) ships no types.
declare module 'cluster-key-slot' {
  /** The Redis Cluster slot (0–16383) of a key, honouring a {hash tag}. */
  export default function generate(key: string | Buffer): number;
  /** The one slot of all the keys, or -1 when they span several. */
  export function generateMulti(keys: (string | Buffer)[]): number;
}
