import { MemoryBackplane, MemoryState } from '../../src/backplane/memory.js';
import { backplaneContract } from './backplane.contract.js';

backplaneContract('memory', async () => {
  let state = new MemoryState();
  return {
    async reset() {
      state = new MemoryState();
    },
    async node(limits) {
      return new MemoryBackplane(state, limits);
    },
    async close() {},
  };
});
