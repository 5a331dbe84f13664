import type { Result } from './measure.js';

// A small SVG: latency percentiles (log scale) against delivered load, one line per mode and
// percentile, over the dm scenarios (each is a different offered load).

const WIDTH = 640;
const HEIGHT = 360;
const MARGIN = 50;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd'];

export function chart(results: Result[]): string {
  const points = results.filter((r) => r.scenario.startsWith('dm'));
  const maxRate = Math.max(1, ...points.map((r) => r.rate));
  const latencies = points.flatMap((r) => [r.latencyMs.p50, r.latencyMs.p99]).filter((v) => v > 0);
  const [low, high] = [Math.min(0.01, ...latencies), Math.max(1, ...latencies)];
  const x = (rate: number) => MARGIN + (rate / maxRate) * (WIDTH - 2 * MARGIN);
  const y = (ms: number) => HEIGHT - MARGIN
    - ((Math.log10(Math.max(ms, low)) - Math.log10(low)) / (Math.log10(high) - Math.log10(low))) * (HEIGHT - 2 * MARGIN);
  const modes = [...new Set(points.map((r) => r.mode))];
  const series = modes.flatMap((mode, m) => (['p50', 'p90', 'p99'] as const).map((p, k) => {
    const line = points.filter((r) => r.mode === mode).sort((a, b) => a.rate - b.rate)
      .map((r) => `${x(r.rate).toFixed(1)},${y(r.latencyMs[p]).toFixed(1)}`).join(' ');
    return `<polyline fill="none" stroke="${COLORS[m % COLORS.length]}" stroke-dasharray="${['', '6 3', '2 2'][k]}" points="${line}"/>`
      + `<text x="${WIDTH - MARGIN + 4}" y="${MARGIN + (m * 3 + k) * 14}" font-size="10" fill="${COLORS[m % COLORS.length]}">${mode} ${p}</text>`;
  }));
  const rateTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(maxRate * f))
    .map((rate) => `<text x="${x(rate) - 10}" y="${HEIGHT - MARGIN + 14}" font-size="10">${rate >= 1000 ? `${Math.round(rate / 1000)}k` : rate}</text>`);
  const ticks = [0.01, 0.1, 1, 10, 100, 1000].filter((t) => t >= low && t <= high)
    .map((t) => `<text x="4" y="${y(t) + 3}" font-size="10">${t} ms</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH + 120}" height="${HEIGHT}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${MARGIN}" y="20" font-size="13">chatline dm latency against delivered messages/s (max ${maxRate}/s)</text>
<line x1="${MARGIN}" y1="${HEIGHT - MARGIN}" x2="${WIDTH - MARGIN}" y2="${HEIGHT - MARGIN}" stroke="black"/>
<line x1="${MARGIN}" y1="${MARGIN}" x2="${MARGIN}" y2="${HEIGHT - MARGIN}" stroke="black"/>
<text x="${WIDTH / 2}" y="${HEIGHT - 15}" font-size="11">delivered messages per second</text>
${ticks.join('\n')}
${rateTicks.join('\n')}
${series.join('\n')}
</svg>
`;
}
