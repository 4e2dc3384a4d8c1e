// The planners' dashboard (/dashboard): occupancy over time (city and lot, zoomable), the
// hour-of-week heatmap, the share of time above the 85 % target, forecast against actual with
// the published error, sensor health, the signs and their log. Every panel offers a CSV of
// what it shows (a zoomed chart: only the zoomed range).

import {
  chartsAvailable, downloadCsv, dropChart, fillTable, seconds, tableRows, timeChart, visibleRange,
} from './charts.js';
import {
  cityLinks, cityUrl, config, formatNumber, formatPercent, formatTime, langButton, onLangChange,
  serverNow, t, translate,
} from './i18n.js';

const $ = (selector) => document.querySelector(selector);
const REFRESH_MS = 60_000;
const state = { scope: '', days: 7, horizon: config.horizons.includes(30) ? 30 : config.horizons[0] };
const data = {};
const charts = {};

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== '' && value !== null && value !== undefined) search.set(key, value);
  }
  return search.toString();
}

async function getJson(path, params = {}) {
  const response = await fetch(`v1/dashboard/${path}?${query({ ...params, city: config.city.id })}`, { headers: { Accept: 'application/json' } });
  if (!response.ok) {
    let detail = `HTTP ${response.status}`;
    try { detail = (await response.json()).detail ?? detail; } catch { /* not JSON */ }
    throw new Error(detail);
  }
  return response.json();
}

function period() {
  const to = serverNow();
  const from = new Date(to.getTime() - state.days * 86_400_000);
  return { from: from.toISOString(), to: to.toISOString() };
}

function setStatus(panel, text) {
  const element = document.querySelector(`#${panel} .status`);
  if (element) element.textContent = text;
}

/**
 * Load one panel from v1/dashboard/{name} (see PANELS) and draw it: a status line while
 * loading, its error in words if it fails.
 */
async function panel(name) {
  setStatus(name, t('dash.loading'));
  document.getElementById(name).setAttribute('aria-busy', 'true');
  try {
    data[name] = await getJson(name, PANELS[name].params());
    draw(name);
    setStatus(name, '');
  } catch (error) {
    console.error(name, error);
    setStatus(name, t('dash.error', { error: error.message }));
  } finally {
    document.getElementById(name).removeAttribute('aria-busy');
  }
}

const pct = (value) => (value == null ? null : Math.round(value * 1000) / 10);
const lotName = (id) => data.occupancy?.lots.find((lot) => lot.id === id)?.name ?? id;

// --- occupancy over time ----------------------------------------------------------------------

/** The scope choices: the whole city and each lot (once, from the first occupancy answer). */
function fillScope(lots) {
  const select = $('#scope');
  if (select.options.length > 1) return;
  for (const lot of lots) select.add(new Option(lot.name, lot.id));
  select.value = state.scope;
}

function drawOccupancy(body) {
  fillScope(body.lots);
  const xs = seconds(body.times);
  const city = body.city.occupied.map((occupied, i) => (
    occupied == null || !body.city.capacity[i] ? null : pct(occupied / body.city.capacity[i])));
  const series = [{ label: t('dash.occupancy.city'), stroke: '#0b5cad', width: 2 }];
  const ys = [city];
  const lot = body.lots.find((item) => item.id === state.scope);
  if (lot) {
    series.push({ label: t('dash.occupancy.lot', { name: lot.name }), stroke: '#b3261e', width: 2 });
    ys.push(lot.occupied.map((occupied) => (occupied == null || !lot.capacity ? null : pct(occupied / lot.capacity))));
  }
  series.push({ label: t('dash.occupancy.target'), stroke: '#6b6b6b', width: 1, dash: [6, 4] });
  ys.push(xs.map(() => config.target * 100));
  dropChart(charts.occupancy);
  charts.occupancy = timeChart($('#occupancy-chart'), { series, data: [xs, ...ys], yLabel: '%', yRange: [0, 100] });
  const element = $('#occupancy');
  element.dataset.points = String(xs.length);
  if (!xs.length) setStatus('occupancy', t('dash.nodata'));
}

function occupancyCsv() {
  const body = data.occupancy;
  const xs = seconds(body.times);
  const lot = body.lots.find((item) => item.id === state.scope);
  const header = ['time', 'city_occupied', 'city_capacity', 'city_occupancy_pct'];
  if (lot) header.push(`${lot.id}_occupied`, `${lot.id}_capacity`, `${lot.id}_occupancy_pct`);
  const rows = [header];
  for (const i of visibleRange(charts.occupancy, xs)) {
    const occupied = body.city.occupied[i];
    const capacity = body.city.capacity[i];
    const row = [body.times[i], occupied, capacity, occupied == null || !capacity ? '' : pct(occupied / capacity)];
    if (lot) {
      const value = lot.occupied[i];
      row.push(value, lot.capacity, value == null ? '' : pct(value / lot.capacity));
    }
    rows.push(row);
  }
  return rows;
}

// --- heatmap by hour of week ------------------------------------------------------------------

function luminance(rgb) {
  const [r, g, b] = rgb.map((value) => {
    const c = value / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/**
 * Light (empty) to dark blue (full), with whichever text colour contrasts more: black or white,
 * since only those two reach 4.5:1 (WCAG AA) on every background between (the page's near-black
 * text falls to about 4:1 on the middle blues).
 */
function heatColour(rate) {
  const rgb = [245 - rate * 215, 250 - rate * 190, 255 - rate * 110].map(Math.round);
  const ground = luminance(rgb);
  const dark = (ground + 0.05) / 0.05;
  const light = 1.05 / (ground + 0.05);
  return { background: `rgb(${rgb.join(', ')})`, color: dark >= light ? '#000' : '#fff' };
}

function drawHeatmap(body) {
  const scope = state.scope ? lotName(state.scope) : t('dash.scope.city');
  const header = [{ text: '', value: 'weekday' }, ...Array.from({ length: 24 }, (_, hour) => ({ text: String(hour), value: String(hour) }))];
  const rows = body.rates.map((rates, day) => [
    { text: t(`weekday.${day + 1}`), value: t(`weekday.${day + 1}`) },
    ...rates.map((rate, hour) => {
      if (rate == null) return { text: '', value: '' };
      const text = formatNumber(rate * 100);
      return { text, value: pct(rate), className: rate > config.target ? 'over' : '', title: `${t(`weekday.${day + 1}`)} ${hour}:00 – ${formatPercent(rate)}` };
    }),
  ]);
  const table = $('#heatmap-table');
  fillTable(table, header, rows, t('dash.heatmap.caption', { scope }));
  for (const cell of table.querySelectorAll('tbody td')) {
    if (cell.dataset.value) Object.assign(cell.style, heatColour(Number(cell.dataset.value) / 100));
  }
  $('#heatmap').dataset.cells = String(table.querySelectorAll('tbody td[data-value]:not([data-value=""])').length);
}

// --- share of time above the target -------------------------------------------------------------

function drawTarget(body) {
  const row = (item, strong) => {
    const bar = document.createElement('span');
    const label = document.createElement('span');
    label.textContent = item.share == null ? '–' : formatPercent(item.share, 1);
    const track = document.createElement('span');
    track.className = 'bar-track';
    track.setAttribute('aria-hidden', 'true');
    const fill = document.createElement('span');
    fill.className = 'bar-fill';
    fill.style.width = `${(item.share ?? 0) * 100}%`;
    track.append(fill);
    bar.append(label, track);
    return [
      { text: item.name, value: item.id ?? 'city', className: strong ? 'strong' : '' },
      { node: bar, value: item.share == null ? '' : pct(item.share), className: 'num bar-cell' },
      { text: formatNumber(item.above / 4, 2), value: item.above / 4, className: 'num' },
      { text: formatNumber(item.periods / 4, 0), value: item.periods / 4, className: 'num' },
    ];
  };
  const lots = [...body.lots].sort((a, b) => (b.share ?? -1) - (a.share ?? -1));
  fillTable($('#target-table'), [
    t('dash.target.lot'), { text: t('dash.target.share'), className: 'num' },
    { text: t('dash.target.hours'), className: 'num' }, { text: t('dash.target.hours_total'), className: 'num' },
  ], [row(body.city, true), ...lots.map((lot) => row(lot, false))]);
}

// --- forecast against actual ------------------------------------------------------------------

function drawForecast(body) {
  const xs = seconds(body.times);
  // Live and backtest forecasts as two lines: a backtest was computed afterwards.
  const only = (backtest) => body.forecast.map((value, i) => (body.backtest[i] === backtest ? value : null));
  const series = [
    { label: t('dash.forecast.actual'), stroke: '#1b1f23', width: 2 },
    { label: t('dash.forecast.model'), stroke: '#0b5cad', width: 2 },
  ];
  const ys = [body.actual, only(false)];
  if (body.backtest.some(Boolean)) {
    series.push({ label: t('dash.forecast.backtest'), stroke: '#c05a00', width: 2, dash: [6, 3] });
    ys.push(only(true));
  }
  if (body.lot_id) {
    series.push({ label: t('dash.forecast.p10'), stroke: '#7fa7d6', width: 1, dash: [4, 4] },
      { label: t('dash.forecast.p90'), stroke: '#7fa7d6', width: 1, dash: [4, 4] });
    ys.push(body.p10, body.p90);
  }
  dropChart(charts.forecast);
  charts.forecast = timeChart($('#forecast-chart'), {
    series, data: [xs, ...ys], yLabel: t('dash.forecast.unit'), onZoom: observedError,
  });
  observedError();
  if (!xs.length) setStatus('forecast', t('dash.nodata'));
  drawPublished(body);
}

/** The mean absolute error of the forecasts shown (in the zoomed range). */
function observedError() {
  const body = data.forecast;
  const xs = seconds(body.times);
  let sum = 0;
  let points = 0;
  let backtest = 0;
  for (const i of visibleRange(charts.forecast, xs)) {
    if (body.actual[i] != null && body.forecast[i] != null) {
      sum += Math.abs(body.actual[i] - body.forecast[i]);
      points += 1;
      if (body.backtest[i]) backtest += 1;
    }
  }
  const element = $('#forecast-observed');
  const figures = { mae: formatNumber(sum / points, 1), points: formatNumber(points), backtest: formatNumber(backtest) };
  element.textContent = points ? t(backtest ? 'dash.forecast.observed.backtest' : 'dash.forecast.observed', figures) : '';
  element.dataset.mae = points ? (sum / points).toFixed(2) : '';
  element.dataset.backtest = String(backtest);
}

function drawPublished(body) {
  const rows = body.published
    .filter((row) => (state.scope ? row.lot_id === state.scope : row.horizon_min === state.horizon))
    .map((row) => [
      { text: row.name, value: row.lot_id },
      { text: formatNumber(row.horizon_min), value: row.horizon_min, className: 'num' },
      { text: formatNumber(row.mae, 1), value: row.mae, className: 'num' },
      { text: row.mae_rate == null ? '–' : formatPercent(row.mae_rate, 1), value: row.mae_rate == null ? '' : pct(row.mae_rate), className: 'num' },
      { text: formatNumber(row.window_days), value: row.window_days, className: 'num' },
      { text: formatNumber(row.points), value: row.points, className: 'num' },
      { text: formatNumber(row.backtest_points), value: row.backtest_points, className: 'num' },
    ]);
  fillTable($('#published-table'), [
    t('dash.target.lot'), { text: t('dash.horizon'), className: 'num' },
    { text: t('dash.forecast.mae'), className: 'num' }, { text: t('dash.forecast.rate'), className: 'num' },
    { text: t('dash.forecast.days'), className: 'num' }, { text: t('dash.forecast.points'), className: 'num' },
    { text: t('dash.forecast.backtest_points'), className: 'num', title: t('dash.forecast.backtest.title') },
  ], rows);
}

function forecastCsv() {
  const body = data.forecast;
  const xs = seconds(body.times);
  const rows = [['target_time', 'lot_id', 'horizon_min', 'forecast_free', 'free_p10', 'free_p90', 'actual_free', 'backtest']];
  for (const i of visibleRange(charts.forecast, xs)) {
    rows.push([body.times[i], body.lot_id ?? 'city', body.horizon_min, body.forecast[i], body.p10[i], body.p90[i], body.actual[i], body.backtest[i]]);
  }
  return rows;
}

// --- sensor health ------------------------------------------------------------------------------

function drawSensors(body) {
  const total = (key) => body.lots.reduce((sum, lot) => sum + lot[key], 0);
  $('#sensors-summary').textContent = t('dash.sensors.summary', {
    sensors: formatNumber(total('sensors')), silent: formatNumber(total('silent')),
    stuck: formatNumber(total('stuck')), battery: formatNumber(total('battery_low')),
    jumps: formatNumber(total('counter_jump')),
    gateways: formatNumber(body.gateways.length),
    silentGateways: formatNumber(body.gateways.filter((gateway) => gateway.silent).length),
  });
  const flags = (list) => {
    const span = document.createElement('span');
    for (const flag of list) {
      const item = document.createElement('span');
      item.className = 'flag';
      // Known flags in words (the raw flag as the tooltip); counts such as drift:4 as they are.
      const key = `dash.flag.${flag}`;
      const text = t(key);
      item.textContent = text === key ? flag : text;
      item.title = flag;
      span.append(item);
    }
    return span;
  };
  fillTable($('#sensor-lots-table'), [
    t('dash.sensors.lot'), t('dash.sensors.counting'),
    ...['count', 'silent', 'stuck', 'battery', 'quality'].map((key) => ({ text: t(`dash.sensors.${key}`), className: 'num' })),
    t('dash.sensors.flags'),
  ], body.lots.map((lot) => [
    { text: lot.name, value: lot.id },
    { text: t(`counting.${lot.counting}`), value: lot.counting },
    { text: formatNumber(lot.sensors), value: lot.sensors, className: 'num' },
    { text: formatNumber(lot.silent), value: lot.silent, className: lot.silent ? 'num ok-no' : 'num' },
    { text: formatNumber(lot.stuck), value: lot.stuck, className: lot.stuck ? 'num ok-no' : 'num' },
    { text: formatNumber(lot.battery_low), value: lot.battery_low, className: lot.battery_low ? 'num ok-no' : 'num' },
    { text: lot.quality == null ? '–' : formatPercent(lot.quality), value: lot.quality ?? '', className: 'num' },
    { node: flags(lot.flags), value: lot.flags.join(' ') },
  ]));
  const problems = ['silent', 'stuck', 'battery_low', 'counter_jump'];
  const words = { battery_low: 'battery', counter_jump: 'counterJump' };
  const problem = (sensor) => problems.filter((key) => sensor[key])
    .map((key) => t(`dash.sensors.${words[key] ?? key}`)).join(', ');
  fillTable($('#sensor-problems-table'), [
    t('dash.sensors.sensor'), t('dash.sensors.lot'), t('dash.sensors.problem'),
    t('dash.sensors.lastSeen'), { text: t('dash.sensors.voltage'), className: 'num' }, t('dash.sensors.gateway'),
  ], body.problems.map((sensor) => [
    sensor.sensor_id,
    { text: lotName(sensor.lot_id), value: sensor.lot_id },
    { text: problem(sensor), value: problems.filter((key) => sensor[key]).join(' ') },
    { text: formatTime(sensor.last_seen, true), value: sensor.last_seen ?? '' },
    { text: sensor.battery_v == null ? '–' : formatNumber(sensor.battery_v, 2), value: sensor.battery_v ?? '', className: 'num' },
    sensor.gateway_id ?? '',
  ]));
  fillTable($('#gateways-table'), [
    t('dash.sensors.gateway'), t('dash.sensors.lastSeen'), { text: t('dash.sensors.count'), className: 'num' }, t('dash.sensors.gatewayState'),
  ], body.gateways.map((gateway) => [
    gateway.id,
    { text: formatTime(gateway.last_seen, true), value: gateway.last_seen },
    { text: formatNumber(gateway.sensors), value: gateway.sensors, className: 'num' },
    { text: gateway.silent ? t('dash.sensors.silent') : t('dash.sensors.ok'), value: gateway.silent ? 'silent' : 'ok', className: gateway.silent ? 'ok-no' : '' },
  ]));
}

// --- signs --------------------------------------------------------------------------------------

const ARROWS = { left: '←', right: '→', straight: '↑', none: ' ' };

function shown(content) {
  if (!content?.lines) return '–';
  return content.lines.map((line) => `${ARROWS[line.arrow] ?? ''} ${line.label} ${line.text}`.trim()).join(' | ');
}

function drawSigns(body) {
  fillTable($('#signs-table'), [
    t('dash.signs.sign'), t('dash.signs.shows'), t('dash.signs.since'), t('dash.signs.ack'),
    { text: t('dash.signs.failures'), className: 'num' }, t('dash.signs.lastError'),
  ], body.signs.map((sign) => [
    { text: sign.name, value: sign.id },
    { text: shown(sign.content), className: 'sign-text' },
    { text: formatTime(sign.shown_since, true), value: sign.shown_since ?? '' },
    { text: formatTime(sign.last_ack, true), value: sign.last_ack ?? '' },
    { text: formatNumber(sign.consecutive_failures), value: sign.consecutive_failures, className: sign.consecutive_failures ? 'num ok-no' : 'num' },
    sign.last_error ? `${formatTime(sign.last_error_at, true)}: ${sign.last_error}` : '',
  ]));
  const names = new Map(body.signs.map((sign) => [sign.id, sign.name]));
  fillTable($('#sign-log-table'), [
    t('dash.signlog.time'), t('dash.signs.sign'), t('dash.signs.shows'), t('dash.signlog.ok'),
  ], body.log.map((entry) => [
    { text: formatTime(entry.time, true), value: entry.time },
    { text: names.get(entry.sign_id) ?? entry.sign_id, value: entry.sign_id },
    shown(entry.content),
    { text: entry.ok ? `${t('dash.signlog.okYes')}${entry.ack ? ` (${entry.ack})` : ''}` : `${t('dash.signlog.okNo')}: ${entry.error ?? ''}`,
      value: entry.ok ? 'ok' : `error: ${entry.error ?? ''}`, className: entry.ok ? '' : 'ok-no' },
  ]));
}

// --- charging points: blocked hours ----------------------------------------------------------

function drawChargers(body) {
  $('#chargers-note').textContent = body.points.length
    ? t('dash.chargers.hint', { minutes: formatNumber(body.blocked_after_min) })
    : t('dash.chargers.none');
  $('#chargers-table').hidden = !body.points.length;
  const most = Math.max(1, ...body.points.map((point) => point.blocked_hours));
  fillTable($('#chargers-table'), [
    t('dash.chargers.point'), t('dash.chargers.station'), t('dash.chargers.bays'),
    { text: t('dash.chargers.hours'), className: 'num' }, t('dash.chargers.share'),
  ], body.points.map((point) => {
    const bar = document.createElement('meter');
    Object.assign(bar, { min: 0, max: most, value: point.blocked_hours });
    bar.setAttribute('aria-label', t('dash.chargers.barLabel', { point: point.evse_id }));
    return [
      { text: point.evse_id, value: point.evse_id },
      { text: point.station, value: point.station_id },
      { text: point.bays.join(', ') || '–', value: point.bays.join(' ') },
      { text: formatNumber(point.blocked_hours), value: point.blocked_hours, className: 'num' },
      { node: bar, value: point.blocked_hours },
    ];
  }));
}

// --- wiring ----------------------------------------------------------------------------------

// Each panel: the parameters of its request to v1/dashboard/{name}, and what draws the answer.
const PANELS = {
  occupancy: { params: () => ({ ...period(), resolution: state.days <= 2 ? '15m' : '1h' }), draw: drawOccupancy },
  heatmap: { params: () => ({ ...period(), lot_id: state.scope }), draw: drawHeatmap },
  target: { params: period, draw: drawTarget },
  forecast: { params: () => ({ ...period(), lot_id: state.scope, horizon: state.horizon }), draw: drawForecast },
  sensors: { params: () => ({}), draw: drawSensors },
  signs: { params: () => ({ ...period(), limit: 100 }), draw: drawSigns },
  chargers: { params: period, draw: drawChargers },
};

/** Draw panel `name` again (in the current language and scope), once its data is there. */
function draw(name) {
  if (data[name]) PANELS[name].draw(data[name]);
}

const CSV = {
  occupancy: occupancyCsv,
  forecast: forecastCsv,
  heatmap: () => tableRows($('#heatmap-table')),
  target: () => tableRows($('#target-table')),
  published: () => tableRows($('#published-table')),
  'sensor-lots': () => tableRows($('#sensor-lots-table')),
  'sensor-problems': () => tableRows($('#sensor-problems-table')),
  gateways: () => tableRows($('#gateways-table')),
  signs: () => tableRows($('#signs-table')),
  chargers: () => tableRows($('#chargers-table')),
  'sign-log': () => tableRows($('#sign-log-table')),
};

/**
 * Write the head of each panel and table that asks for one (data-title, data-csv): its
 * heading (h2 of a panel, labelling it; h3 of a table in it) and the button for its CSV; and
 * a status line at the end of each panel that has none of its own.
 */
function writeHeads() {
  for (const element of document.querySelectorAll('[data-title]')) {
    const panel = element.tagName === 'SECTION';
    const heading = document.createElement(panel ? 'h2' : 'h3');
    heading.dataset.i18n = element.dataset.title;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'csv';
    Object.assign(button.dataset, { csv: element.dataset.csv, i18n: 'dash.csv' });
    if (!panel) {
      element.append(heading, button);
      continue;
    }
    heading.id = `${element.id}-h`;
    element.setAttribute('aria-labelledby', heading.id);
    const head = document.createElement('div');
    head.className = 'panel-head';
    head.append(heading, button);
    element.prepend(head);
    if (!element.querySelector('.status')) {
      const status = document.createElement('p');
      status.className = 'status';
      status.setAttribute('role', 'status');
      element.append(status);
    }
  }
}

writeHeads();
for (const button of document.querySelectorAll('button[data-csv]')) {
  button.addEventListener('click', () => {
    const name = button.dataset.csv;
    downloadCsv(name, CSV[name]());
  });
}

function loadAll() {
  return Promise.all(Object.keys(PANELS).map((name) => panel(name).then(() => {
    // names of lots come with the occupancy; the other panels label with them
    if (name === 'occupancy') { draw('heatmap'); draw('sensors'); }
  })));
}

function redraw() {
  document.title = `${t('dash.title')} – ${config.city.name}`;
  fillHorizons();
  for (const name of Object.keys(PANELS)) draw(name);
}

function fillHorizons() {
  const select = $('#horizon');
  select.replaceChildren(...config.horizons.map((minutes) => new Option(
    t('dash.forecast.horizon', { minutes }), String(minutes), false, minutes === state.horizon)));
}

$('#scope').addEventListener('change', (event) => {
  state.scope = event.target.value;
  draw('occupancy');
  panel('heatmap');
  panel('forecast');
});
$('#period').addEventListener('change', (event) => {
  state.days = Number(event.target.value);
  loadAll();
});
$('#horizon').addEventListener('change', (event) => {
  state.horizon = Number(event.target.value);
  panel('forecast');
});
$('#controls').addEventListener('submit', (event) => event.preventDefault());

translate();
langButton($('#lang'));
onLangChange(redraw);
for (const el of document.querySelectorAll('.city-name')) el.textContent = config.city.name;
cityLinks($('#cities'));
const mapLink = () => { $('#map-link').href = cityUrl('./'); };
mapLink();
onLangChange(mapLink);
document.title = `${t('dash.title')} – ${config.city.name}`;
fillHorizons();
if (!chartsAvailable()) for (const el of document.querySelectorAll('.chart')) el.hidden = true;
loadAll().then(() => { document.body.dataset.loaded = 'true'; });
// Sensors and signs change by the minute; the charts only when asked (a refresh would reset
// the planner's zoom).
setInterval(() => { panel('sensors'); panel('signs'); }, REFRESH_MS);
