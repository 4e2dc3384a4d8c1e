// A city's monthly report (the console's Reports): the figures of
// v1/console/reports/{city}/{month}, read with the console's session cookie, as tables to
// read and to print (A4; the browser's "print to PDF" makes its PDF).

import { config, t, translate, langButton, onLangChange, formatNumber, formatPercent } from './i18n.js';
import { element, tableHead } from './dom.js';
import { problemText } from './problem.js';

const $ = (id) => document.getElementById(id);
// The page is /console/reports/{city}/{month}: the site's root is three levels up (relative, so
// the site may sit below a proxy's prefix).
const root = new URL('../../../', window.location.href).pathname;
const path = `${root}v1/console/reports/${encodeURIComponent(config.city.id)}/${config.month}`;
let report = null;

function formatDate(iso, withTime = false) {
  const options = { day: '2-digit', month: '2-digit', year: 'numeric', timeZone: config.city.timezone };
  if (withTime) Object.assign(options, { hour: '2-digit', minute: '2-digit' });
  return new Intl.DateTimeFormat(document.documentElement.lang, options).format(new Date(iso));
}

const share = (value) => (value === null ? '–' : formatPercent(value, 1));
const number = (value, digits = 0) => (value === null ? '–' : formatNumber(value, digits));
const cars = (value) => t('report.cars', { cars: number(value, 1) });

const lotName = (id) => report.occupancy.find((lot) => lot.lot_id === id)?.name ?? id;
const percentAndCars = (rate, occupied) => (rate === null ? '–' : `${share(rate)} (${cars(occupied)})`);

// The report's tables, in order: each a section (heading `title`, rows in `${id}-rows`) with a
// row per item and a cell per column: the key of the column's heading, its class ('num': a
// figure, right-aligned) and the item's text in it. The first column names the row.
const TABLES = [
  { id: 'occupancy', title: 'report.occupancy', items: () => report.occupancy, columns: [
    { key: 'report.lot', text: (lot) => lot.name },
    { key: 'report.capacity', className: 'num', text: (lot) => number(lot.capacity) },
    { key: 'report.mean', className: 'num', text: (lot) => percentAndCars(lot.mean_rate, lot.mean_occupied) },
    { key: 'report.peak', className: 'num', text: (lot) => percentAndCars(lot.peak_rate, lot.peak_occupied) },
    { key: 'report.peak_at', text: (lot) => (lot.peak_at ? formatDate(lot.peak_at, true) : '–') },
    { key: 'report.above', className: 'num', text: (lot) => share(lot.share_above_85) },
  ] },
  { id: 'quality', title: 'report.quality', items: () => report.data_quality, columns: [
    { key: 'report.lot', text: (lot) => lotName(lot.lot_id) },
    { key: 'report.coverage', className: 'num', text: (lot) => share(lot.coverage) },
    { key: 'report.bays', className: 'num', text: (lot) => number(lot.bays) },
    { key: 'report.silent', className: 'num', text: (lot) => number(lot.bays_silent) },
    { key: 'report.stuck', className: 'num', text: (lot) => number(lot.bays_stuck) },
    { key: 'report.flags', text: (lot) => (lot.quality_now === null ? '–'
      : [share(lot.quality_now), ...lot.flags_now].join(', ')) },
  ] },
  { id: 'sign', title: 'report.signs', items: () => report.signs, columns: [
    { key: 'report.sign', text: (sign) => sign.name },
    { key: 'report.available', className: 'num', text: (sign) => share(sign.available_share) },
    { key: 'report.known', className: 'num', text: (sign) => share(sign.known_share) },
    { key: 'report.pushes', className: 'num', text: (sign) => number(sign.pushes) },
    { key: 'report.failed_pushes', className: 'num', text: (sign) => number(sign.failed_pushes) },
  ] },
  { id: 'forecast', title: 'report.forecast', items: () => report.forecast_error, columns: [
    { key: 'report.lot', text: (error) => lotName(error.lot_id) },
    { key: 'report.horizon', className: 'num', text: (error) => number(error.horizon_min) },
    { key: 'report.mae', className: 'num', text: (error) => number(error.mae, 2) },
    { key: 'report.mae_rate', className: 'num', text: (error) => share(error.mae_rate) },
    { key: 'report.points', className: 'num', text: (error) => number(error.points) },
  ] },
  { id: 'alarm', title: 'report.alarms', items: () => report.alarms, columns: [
    { key: 'report.alarm', text: (alarm) => `${t(`alarm.${alarm.kind}`)} (${t(`severity.${alarm.severity}`)})` },
    { key: 'report.raised', className: 'num', text: (alarm) => number(alarm.raised) },
    { key: 'report.acknowledged', className: 'num', text: (alarm) => number(alarm.acknowledged) },
    { key: 'report.to_ack', className: 'num', text: (alarm) => (alarm.mean_minutes_to_ack === null ? '–'
      : t('report.minutes', { mean: number(alarm.mean_minutes_to_ack, 1), max: number(alarm.max_minutes_to_ack, 1) })) },
    { key: 'report.open_at_end', className: 'num', text: (alarm) => number(alarm.open_at_end) },
  ] },
];

/** Write a section per table (its heading and its table's head) before the report's notes. */
function writeTables() {
  $('report').prepend(...TABLES.map(({ id, title, columns }) => {
    const heading = element('h2', { id: `${id}-h` });
    heading.dataset.i18n = title;
    const table = element('table', { className: 'report-table' });
    tableHead(table, columns);
    table.append(element('tbody', { id: `${id}-rows` }));
    const section = element('section', { className: 'report-section' });
    section.setAttribute('aria-labelledby', heading.id);
    section.append(heading, table);
    return section;
  }));
}

/** The rows of a table: a row per item, or one that says there is none. */
function fill({ id, items, columns }) {
  const rows = items().map((item) => {
    const row = element('tr');
    row.append(...columns.map(({ text, className }, index) => {
      const cell = element(index === 0 ? 'th' : 'td', { textContent: text(item) });
      if (index === 0) cell.scope = 'row';
      if (className) cell.className = className;
      return cell;
    }));
    return row;
  });
  if (!rows.length) {
    const row = element('tr');
    row.append(element('td', { textContent: t('report.none'), colSpan: columns.length }));
    rows.push(row);
  }
  $(`${id}-rows`).replaceChildren(...rows);
}

function render() {
  if (!report) return;
  const { period } = report;
  // The month's last day: the instant before its end.
  const last = new Date(Date.parse(period.end) - 1).toISOString();
  let text = t('report.period', { start: formatDate(period.start), end: formatDate(last),
    hours: formatNumber(period.hours) });
  if (!period.complete) text += ` (${t('report.partial', { until: formatDate(period.until, true) })})`;
  $('report-period').textContent = text;
  for (const table of TABLES) fill(table);
}

async function load() {
  $('report-status').textContent = t('report.loading');
  const response = await fetch(path, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
  if (response.status === 401) {
    $('report-status').textContent = t('report.login');
    return;
  }
  if (!response.ok) {
    $('report-status').textContent = t('report.failed', { reason: await problemText(response) });
    return;
  }
  report = await response.json();
  $('report-status').textContent = '';
  $('report').hidden = false;
  render();
}

$('report-month').textContent = config.month;
$('report-back').href = `${root}console`;
for (const el of document.querySelectorAll('.city-name')) el.textContent = config.city.name;
$('report-csv').href = `${path}?format=csv`;
$('report-print').addEventListener('click', () => window.print());
writeTables();
translate();
langButton($('lang'));
onLangChange(render);
load().catch((error) => { $('report-status').textContent = t('report.failed', { reason: String(error) }); });
