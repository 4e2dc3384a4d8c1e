// Time-series charts (uPlot: small, fast, canvas; drag to zoom, double-click to reset), data
// tables, and CSV of exactly what is on screen.

import { config, currentLang, serverNow, t } from './i18n.js';

let uPlot = null;
try {
  uPlot = (await import('../vendor/uplot/uPlot.esm.js')).default;
} catch (error) {
  console.warn('uPlot not available; charts are left out', error);
}

export const chartsAvailable = () => uPlot !== null;

const DAY = 86_400;

function formatter(options) {
  return new Intl.DateTimeFormat(currentLang(), { timeZone: config.city.timezone, ...options });
}

/** Time-axis labels in the city's timezone and the page's language: clock times, and the
 * date at midnight or when the ticks are days apart. */
function timeLabels(chart, splits, axis, space, increment) {
  const day = formatter({ weekday: 'short', day: 'numeric', month: 'numeric' });
  const clock = formatter({ hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
  return splits.map((ts) => {
    const moment = new Date(ts * 1000);
    const time = clock.format(moment);
    return increment >= DAY || time === '00:00' ? day.format(moment) : time;
  });
}

function legendTime(chart, ts) {
  if (ts == null) return '–';
  return formatter({ weekday: 'short', day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit' })
    .format(new Date(ts * 1000));
}

/** Seconds since the epoch (uPlot's x values) of RFC 3339 strings. */
export const seconds = (times) => times.map((time) => Date.parse(time) / 1000);

/**
 * A uPlot chart in `element`, sized to it, with the city's timezone on the time axis.
 * `series`: [{label, stroke, dash, width, fill}], `data`: [xs, ...ys], `onZoom()` after the x
 * range changed. Returns the chart (or null without uPlot); it follows the element's width.
 */
export function timeChart(element, { series, data, yLabel = '', yRange = null, height = 320, onZoom = null }) {
  element.replaceChildren();
  if (!uPlot) return null;
  const options = {
    width: Math.max(element.clientWidth, 300),
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), config.city.timezone),
    scales: { x: { time: true }, y: yRange ? { range: yRange } : { auto: true } },
    cursor: { drag: { x: true, y: false } },
    legend: { live: true },
    series: [{ label: t('dash.time'), value: legendTime }, ...series.map((s) => ({
      label: s.label, stroke: s.stroke, width: s.width ?? 2, dash: s.dash, fill: s.fill,
      spanGaps: false, points: s.points ?? { show: false },
    }))],
    axes: [{ values: timeLabels, space: 60 }, { label: yLabel, size: 60 }],
    // a zoom (drag) or its reset (double-click) moves the x scale
    hooks: onZoom ? { setScale: [(chart, key) => { if (key === 'x' && chart.status === 1) onZoom(); }] } : {},
  };
  const chart = new uPlot(options, data, element);
  const observer = new ResizeObserver(() => {
    if (element.clientWidth > 0) chart.setSize({ width: element.clientWidth, height });
  });
  observer.observe(element);
  chart.observer = observer;
  return chart;
}

export function dropChart(chart) {
  if (!chart) return;
  chart.observer?.disconnect();
  chart.destroy();
}

/** Indexes of the chart's x values inside its current (zoomed) x range. */
export function visibleRange(chart, xs) {
  const min = chart?.scales.x.min ?? -Infinity;
  const max = chart?.scales.x.max ?? Infinity;
  const indexes = [];
  xs.forEach((x, i) => { if (x >= min && x <= max) indexes.push(i); });
  return indexes;
}

// --- tables and CSV --------------------------------------------------------------------------

/**
 * Fill `table` with a header and rows. A cell is text, or {text, value, className, title}
 * where `value` is what CSV gets (raw numbers, ISO times) instead of the formatted text.
 */
export function fillTable(table, header, rows, caption = null) {
  table.replaceChildren();
  if (caption) {
    const element = table.createCaption();
    element.textContent = caption;
  }
  const head = table.createTHead().insertRow();
  for (const cell of header) {
    const th = document.createElement('th');
    th.scope = 'col';
    setCell(th, cell);
    head.append(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    row.forEach((cell, index) => {
      const element = document.createElement(index === 0 ? 'th' : 'td');
      if (index === 0) element.scope = 'row';
      setCell(element, cell);
      tr.append(element);
    });
  }
}

function setCell(element, cell) {
  if (cell !== null && typeof cell === 'object' && !(cell instanceof Node)) {
    if (cell.node) element.append(cell.node); else element.textContent = cell.text ?? '';
    if (cell.value !== undefined && cell.value !== null) element.dataset.value = String(cell.value);
    if (cell.className) element.className = cell.className;
    if (cell.title) element.title = cell.title;
  } else {
    element.textContent = cell ?? '';
  }
}

function csvField(value) {
  const text = value == null ? '' : String(value);
  return /[",\n;]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(rows) {
  return rows.map((row) => row.map(csvField).join(',')).join('\r\n') + '\r\n';
}

/** The rows of a table as shown (raw `data-value` where a cell has one), header first. */
export function tableRows(table) {
  return [...table.rows].map((tr) => [...tr.cells].map((cell) => cell.dataset.value ?? cell.textContent.trim()));
}

/** Offer `rows` as a CSV file download. */
export function downloadCsv(name, rows) {
  const blob = new Blob(['\ufeff', toCsv(rows)], { type: 'text/csv;charset=utf-8' });
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  const day = serverNow().toISOString().slice(0, 10);
  link.download = `parkleit-${name}-${day}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
