import type { Result } from './measure.js';

// A small SVG in two panels. Top: latency percentiles (log scale) against delivered load, one
// line per mode and percentile, over the dm scenarios (each is a different offered load).
// Bottom: deliveries per second of every room scenario, one bar per mode (ngIRCd included),
// with each bar's p99 latency written on it.

const WIDTH = 640;
const HEIGHT = 360;
const MARGIN = 50;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];

export function chart(results: Result[]): string {
  const rooms = results.filter((r) => r.scenario.startsWith('room'));
  const roomHeight = rooms.length > 0 ? HEIGHT : 0;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH + 240}" height="${HEIGHT + roomHeight}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${dmPanel(results.filter((r) => r.scenario.startsWith('dm')))}
${rooms.length > 0 ? `<g transform="translate(0 ${HEIGHT})">${roomPanel(rooms)}</g>` : ''}
</svg>
`;
}

function dmPanel(points: Result[]): string {
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
      + `<text x="${WIDTH - MARGIN + 4}" y="${MARGIN + (m * 3 + k) * 14}" font-size="10" fill="${COLORS[m % COLORS.length]}">${escape(mode)} ${p}</text>`;
  }));
  const rateTicks = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(maxRate * f))
    .map((rate) => `<text x="${x(rate) - 10}" y="${HEIGHT - MARGIN + 14}" font-size="10">${rate >= 1000 ? `${Math.round(rate / 1000)}k` : rate}</text>`);
  const ticks = [0.01, 0.1, 1, 10, 100, 1000].filter((t) => t >= low && t <= high)
    .map((t) => `<text x="4" y="${y(t) + 3}" font-size="10">${t} ms</text>`);
  return `<text x="${MARGIN}" y="20" font-size="13">chatline dm latency against delivered messages/s (max ${maxRate}/s)</text>
<line x1="${MARGIN}" y1="${HEIGHT - MARGIN}" x2="${WIDTH - MARGIN}" y2="${HEIGHT - MARGIN}" stroke="black"/>
<line x1="${MARGIN}" y1="${MARGIN}" x2="${MARGIN}" y2="${HEIGHT - MARGIN}" stroke="black"/>
<text x="${WIDTH / 2}" y="${HEIGHT - 15}" font-size="11">delivered messages per second</text>
${ticks.join('\n')}
${rateTicks.join('\n')}
${series.join('\n')}`;
}

function roomPanel(rooms: Result[]): string {
  const scenarios = [...new Set(rooms.map((r) => r.scenario))];
  const modes = [...new Set(rooms.map((r) => r.mode))];
  // Headroom above the tallest bar for its label.
  const maxRate = Math.max(1, ...rooms.map((r) => r.rate)) * 1.4;
  const plotWidth = WIDTH - 2 * MARGIN;
  const group = plotWidth / scenarios.length;
  const bar = (group * 0.8) / modes.length;
  const y = (rate: number) => HEIGHT - MARGIN - (rate / maxRate) * (HEIGHT - 2 * MARGIN);
  const bars = rooms.map((r) => {
    const left = MARGIN + scenarios.indexOf(r.scenario) * group + group * 0.1 + modes.indexOf(r.mode) * bar;
    const color = COLORS[modes.indexOf(r.mode) % COLORS.length];
    const p99 = r.latencyMs.p99 >= 10 ? Math.round(r.latencyMs.p99) : r.latencyMs.p99.toFixed(1);
    const label = `${Math.round(r.rate / 1000)}k, p99 ${p99} ms`;
    return `<rect x="${left.toFixed(1)}" y="${y(r.rate).toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(HEIGHT - MARGIN - y(r.rate)).toFixed(1)}" fill="${color}"/>`
      + `<text transform="translate(${(left + bar / 2 + 3).toFixed(1)} ${(y(r.rate) - 4).toFixed(1)}) rotate(-90)" font-size="9">${label}</text>`;
  });
  const groups = scenarios.map((scenario, i) =>
    `<text x="${(MARGIN + i * group + group * 0.1).toFixed(1)}" y="${HEIGHT - MARGIN + 14}" font-size="10">${escape(scenario.replace(', window', ', w'))}</text>`);
  const legend = modes.map((mode, m) =>
    `<text x="${WIDTH - MARGIN + 4}" y="${MARGIN + m * 14}" font-size="10" fill="${COLORS[m % COLORS.length]}">${escape(mode)}</text>`);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(maxRate * f))
    .map((rate) => `<text x="4" y="${y(rate) + 3}" font-size="10">${Math.round(rate / 1000)}k</text>`);
  return `<text x="${MARGIN}" y="20" font-size="13">room deliveries/s by mode (bar label: rate, p99 latency)</text>
<line x1="${MARGIN}" y1="${HEIGHT - MARGIN}" x2="${WIDTH - MARGIN}" y2="${HEIGHT - MARGIN}" stroke="black"/>
<line x1="${MARGIN}" y1="${MARGIN}" x2="${MARGIN}" y2="${HEIGHT - MARGIN}" stroke="black"/>
${ticks.join('\n')}
${groups.join('\n')}
${bars.join('\n')}
${legend.join('\n')}`;
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
