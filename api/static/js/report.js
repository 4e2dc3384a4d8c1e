// A city's monthly report (the console's Reports): the figures of
// v1/console/reports/{city}/{month}, read with the console's session cookie, as tables to
// read and to print (A4; the browser's "print to PDF" makes its PDF).

import { config, t, translate, langButton, onLangChange, formatNumber, formatPercent } from './i18n.js';
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

function cell(text, numeric = false, header = false) {
  const element = document.createElement(header ? 'th' : 'td');
  if (header) element.scope = 'row';
  if (numeric) element.className = 'num';
  element.textContent = text;
  return element;
}

function fill(id, items, columns, width) {
  const rows = items.map((item) => {
    const row = document.createElement('tr');
    row.append(...columns(item));
    return row;
  });
  if (!rows.length) {
    const row = document.createElement('tr');
    const empty = cell(t('report.none'));
    empty.colSpan = width;
    row.append(empty);
    rows.push(row);
  }
  $(id).replaceChildren(...rows);
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
  const names = new Map(report.occupancy.map((lot) => [lot.lot_id, lot.name]));
  fill('occupancy-rows', report.occupancy, (lot) => [
    cell(lot.name, false, true), cell(number(lot.capacity), true),
    cell(lot.mean_rate === null ? '–' : `${share(lot.mean_rate)} (${cars(lot.mean_occupied)})`, true),
    cell(lot.peak_rate === null ? '–' : `${share(lot.peak_rate)} (${cars(lot.peak_occupied)})`, true),
    cell(lot.peak_at ? formatDate(lot.peak_at, true) : '–'), cell(share(lot.share_above_85), true),
  ], 6);
  fill('quality-rows', report.data_quality, (lot) => [
    cell(names.get(lot.lot_id) ?? lot.lot_id, false, true), cell(share(lot.coverage), true),
    cell(number(lot.bays), true), cell(number(lot.bays_silent), true), cell(number(lot.bays_stuck), true),
    cell(lot.quality_now === null ? '–'
      : [share(lot.quality_now), ...lot.flags_now].join(', ')),
  ], 6);
  fill('sign-rows', report.signs, (sign) => [
    cell(sign.name, false, true), cell(share(sign.available_share), true),
    cell(share(sign.known_share), true), cell(number(sign.pushes), true),
    cell(number(sign.failed_pushes), true),
  ], 5);
  fill('forecast-rows', report.forecast_error, (error) => [
    cell(names.get(error.lot_id) ?? error.lot_id, false, true), cell(number(error.horizon_min), true),
    cell(number(error.mae, 2), true), cell(share(error.mae_rate), true), cell(number(error.points), true),
  ], 5);
  fill('alarm-rows', report.alarms, (alarm) => [
    cell(`${t(`alarm.${alarm.kind}`)} (${t(`severity.${alarm.severity}`)})`, false, true),
    cell(number(alarm.raised), true), cell(number(alarm.acknowledged), true),
    cell(alarm.mean_minutes_to_ack === null ? '–' : t('report.minutes', {
      mean: number(alarm.mean_minutes_to_ack, 1), max: number(alarm.max_minutes_to_ack, 1) }), true),
    cell(number(alarm.open_at_end), true),
  ], 5);
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
for (const element of document.querySelectorAll('.city-name')) element.textContent = config.city.name;
$('report-csv').href = `${path}?format=csv`;
$('report-print').addEventListener('click', () => window.print());
translate();
langButton($('lang'));
onLangChange(render);
load().catch((error) => { $('report-status').textContent = t('report.failed', { reason: String(error) }); });
