import { BenchClient } from './client.js';
const n = Number(process.argv[2] ?? 300); const conc = Number(process.argv[3] ?? 1);
let next = 0; const t: number[] = []; const c: number[] = [];
async function one() { while (next < n) { const i = next++; const t0 = performance.now(); const cl = await BenchClient.open(9888); const t1 = performance.now(); const r = await cl.request(`LOGIN lat${Date.now()}x${i}`); t.push(performance.now() - t1); c.push(t1 - t0); if (r !== 'OK') throw new Error(r); } }
const s = performance.now(); await Promise.all(Array.from({ length: conc }, one));
t.sort((a, b) => a - b); c.sort((a, b) => a - b);
console.log(`n=${n} conc=${conc} rate=${Math.round(n / (performance.now() - s) * 1000)}/s connect p50=${c[c.length >> 1]!.toFixed(2)} p99=${c[Math.floor(c.length * .99)]!.toFixed(2)} login p50=${t[t.length >> 1]!.toFixed(2)} p99=${t[Math.floor(t.length * .99)]!.toFixed(2)}`);
process.exit(0);
