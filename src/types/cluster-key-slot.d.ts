// cluster-key-slot (ioredis' own dependency) ships no types.
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot (0–16383) of a key or channel name, honouring {hash tags}. */
  export default function calculateSlot(key: string): number;
}
