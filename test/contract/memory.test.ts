import { MemoryBackplane, MemoryState } from '../../src/backplane/memory.js';
import { backplaneContract, recordingSink, type TestNode } from './backplane.contract.js';

backplaneContract('memory', async () => {
  let state = new MemoryState();
  return {
    async reset() {
      state = new MemoryState();
    },
    async node(maxRoomsPerUser = 100): Promise<TestNode> {
      const inbox = new Map<string, string[]>();
      return { inbox, backplane: new MemoryBackplane(state, recordingSink(inbox), maxRoomsPerUser) };
    },
    async close() {},
  };
});
