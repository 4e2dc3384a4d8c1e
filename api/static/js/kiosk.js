// The demo-room and town-hall kiosk (/kiosk): full screen, no interaction. It rotates every
// `rotate_s` seconds (?rotate=N) through the live map, what each sign shows right now, and
// today's forecast. Lots arrive live over SSE; signs and the forecast are re-read on a timer.

import { dropChart, fillTable, seconds, timeChart } from './charts.js';
import { element } from './dom.js';
import {
  cityQuery, config, formatNumber, formatTime, serverNow, t, translate,
} from './i18n.js';
import { LotFeed, hasCount } from './live.js';
import { LotMap, statusClass, statusText } from './lotmap.js';

const VIEWS = ['map', 'signs', 'forecast'];
const SIGNS_MS = 60_000;  // a backstop: changes arrive over SSE
const TODAY_MS = 300_000;
const ARROWS = { left: '←', right: '→', straight: '↑', none: '' };

const feed = new LotFeed();
const lotMap = new LotMap(document.getElementById('map'), { interactive: false });
let today = null;
let todayChart = null;
let current = -1;

// --- the live map -----------------------------------------------------------------------------

function renderLots() {
  const lots = [...feed.lots.values()].sort((a, b) => a.name.localeCompare(b.name, 'de'));
  const list = document.getElementById('kiosk-lots');
  list.replaceChildren(...lots.map((lot) => {
    const li = element('li');
    li.dataset.lotId = lot.id;
    li.append(element('span', { textContent: lot.name }), element('span', {
      className: `kiosk-free ${statusClass(lot)}`,
      textContent: hasCount(lot) ? formatNumber(lot.free) : statusText(lot),
    }));
    return li;
  }));
  const counted = lots.filter(hasCount);
  document.getElementById('kiosk-total').textContent = t('kiosk.free.total', {
    free: formatNumber(counted.reduce((sum, lot) => sum + lot.free, 0)),
    lots: formatNumber(counted.length),
  });
  if (today) renderToday();
}

feed.addEventListener('reset', (event) => { lotMap.reset(event.detail); renderLots(); });
feed.addEventListener('lot', (event) => { lotMap.update(event.detail.lot); renderLots(); });

// --- what the signs show ----------------------------------------------------------------------

let signs = [];

async function loadSigns() {
  try {
    const response = await fetch(`v1/signs?${cityQuery}`, { headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    signs = (await response.json()).signs;
    renderSigns(signs);
  } catch (error) {
    console.error('signs', error);
  }
}

feed.addEventListener('sign', (event) => {
  const { sign_id: id, content, shown_since: since } = event.detail;
  const sign = signs.find((item) => item.id === id);
  if (!sign) return;
  sign.showing = content?.lines ?? null;
  sign.shown_since = since;
  renderSigns(signs);
});

function renderSigns(signs) {
  const grid = document.getElementById('sign-grid');
  if (!signs.length) {
    grid.replaceChildren(element('p', { textContent: t('kiosk.signs.none') }));
    return;
  }
  grid.replaceChildren(...signs.map((sign) => {
    const card = element('article', { className: 'sign' });
    card.dataset.signId = sign.id;
    const face = element('div', { className: 'sign-face' });
    if (sign.showing) {
      for (const line of sign.showing) {
        const row = element('div', { className: 'sign-line' });
        for (const [className, textContent] of [['arrow', ARROWS[line.arrow] ?? ''], ['label', line.label], ['text', line.text]]) {
          row.append(element('span', { className, textContent }));
        }
        face.append(row);
      }
    } else {
      face.classList.add('sign-waiting');
      face.textContent = t('kiosk.signs.waiting');
    }
    card.append(element('h3', { textContent: sign.name }), face);
    if (sign.shown_since) {
      card.append(element('p', { className: 'note',
        textContent: t('lot.updated', { time: formatTime(sign.shown_since) }) }));
    }
    return card;
  }));
}

// --- today's forecast ---------------------------------------------------------------------------

async function loadToday() {
  try {
    const response = await fetch(`v1/dashboard/today?${cityQuery}`, { headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    today = await response.json();
    renderToday();
  } catch (error) {
    console.error('today', error);
  }
}

/** The city's forecast occupancy per horizon: the lots with a forecast, summed. */
function cityForecast() {
  const byHorizon = new Map();
  for (const lot of today.lots) {
    for (const point of lot.forecasts) {
      const entry = byHorizon.get(point.horizon_min) ?? { time: point.target_time, free: 0, capacity: 0 };
      entry.free += point.free;
      entry.capacity += lot.capacity;
      byHorizon.set(point.horizon_min, entry);
    }
  }
  return [...byHorizon.values()].filter((entry) => entry.capacity > 0)
    .map((entry) => ({ time: Date.parse(entry.time) / 1000, rate: 100 * (1 - entry.free / entry.capacity) }));
}

function renderToday() {
  const xs = seconds(today.times);
  const step = xs.length > 1 ? xs[1] - xs[0] : 900;
  const forecast = xs.map(() => null);
  for (const point of cityForecast()) {
    const index = Math.round((point.time - xs[0]) / step);
    if (index >= 0 && index < xs.length) forecast[index] = Math.round(point.rate * 10) / 10;
  }
  const percent = (values) => values.map((value) => (value == null ? null : Math.round(value * 1000) / 10));
  if (isVisible('forecast') || !todayChart) {
    dropChart(todayChart);
    const element = document.getElementById('today-chart');
    todayChart = timeChart(element, {
      height: Math.max(240, Math.round(window.innerHeight * 0.55)),
      yLabel: '%', yRange: [0, 100],
      series: [
        { label: t('kiosk.forecast.typical'), stroke: '#9aa1a8', width: 2, dash: [6, 4] },
        { label: t('kiosk.forecast.actual'), stroke: '#0b5cad', width: 3 },
        { label: t('kiosk.forecast.model'), stroke: '#b3261e', width: 0, points: { show: true, size: 10, fill: '#b3261e' } },
      ],
      data: [xs, percent(today.typical), percent(today.actual), forecast],
    });
  }
  const horizons = [...new Set(today.lots.flatMap((lot) => lot.forecasts.map((f) => f.horizon_min)))].sort((a, b) => a - b);
  const rows = today.lots.map((lot) => {
    const live = feed.lots.get(lot.id);
    const at = new Map(lot.forecasts.map((point) => [point.horizon_min, point]));
    // A closed lot's forecast of free spaces says nothing a driver can use.
    const closed = live?.status === 'closed';
    return [
      lot.name,
      live && hasCount(live) ? formatNumber(live.free) : (live ? statusText(live) : '–'),
      ...horizons.map((minutes) => (at.has(minutes) && !closed ? `~${formatNumber(Math.round(at.get(minutes).free))}` : '–')),
    ];
  });
  fillTable(document.getElementById('today-table'), [
    t('kiosk.forecast.lot'), t('kiosk.forecast.now'),
    ...horizons.map((minutes) => t('kiosk.forecast.in', { minutes })),
  ], rows);
}

// --- rotation -------------------------------------------------------------------------------------

function isVisible(view) { return VIEWS[current] === view; }

function show(index) {
  current = index % VIEWS.length;
  const view = VIEWS[current];
  for (const name of VIEWS) document.getElementById(`view-${name}`).hidden = name !== view;
  for (const dot of document.querySelectorAll('#kiosk-dots li')) {
    dot.setAttribute('aria-current', String(dot.dataset.view === view));
  }
  document.body.dataset.view = view;
  if (view === 'map') {
    lotMap.resize();
    lotMap.reset([...feed.lots.values()]);
  }
  if (view === 'forecast' && today) renderToday();  // a hidden chart has no size to draw in
}

function tick() {
  document.getElementById('kiosk-clock').textContent = formatTime(serverNow().toISOString());
}

translate();
document.title = t('kiosk.title', { city: config.city.name });
document.getElementById('kiosk-title').textContent = t('kiosk.title', { city: config.city.name });
show(0);
tick();
setInterval(tick, 10_000);
setInterval(() => show(current + 1), config.rotate_s * 1000);
feed.start().catch((error) => console.error('lots', error));
loadSigns();
loadToday();
setInterval(loadSigns, SIGNS_MS);
setInterval(loadToday, TODAY_MS);
