// The drivers' map (/): every lot on the map and in a list beside it, updated live.
// The list is the accessible twin of the map: same order on every update (by name), each item
// one sentence for screen readers, and a button that shows the lot on the map.

import {
  cityLinks, config, formatNumber, formatTime, langButton, onLangChange, t, translate,
} from './i18n.js';
import { ChargeLayer } from './chargemap.js';
import { LotFeed, hasCount, isStale, trendOf } from './live.js';
import { LotMap, countText, statusClass, statusText } from './lotmap.js';

const TREND_ARROWS = { filling: '↘', emptying: '↗', steady: '→' };

const feed = new LotFeed();
const list = document.getElementById('lot-list');
const announcer = document.getElementById('announcer');
const lotMap = new LotMap(document.getElementById('map'), { onSelect: (id) => highlight(id) });
const charging = new ChargeLayer({ section: document.getElementById('charging'), lotMap });

function byName(a, b) { return a.name.localeCompare(b.name, 'de'); }

function item(lot) {
  const li = document.createElement('li');
  li.className = 'lot';
  li.dataset.lotId = lot.id;
  li.innerHTML = `
    <div class="lot-head">
      <h3 class="lot-name"></h3>
      <span class="lot-kind"></span>
    </div>
    <p class="lot-count"><span class="lot-free"></span> <span class="lot-capacity"></span></p>
    <p class="lot-status"><span class="badge"></span> <span class="lot-trend"></span></p>
    <p class="lot-forecast"></p>
    <p class="lot-updated"></p>
    <button type="button" class="lot-show"></button>`;
  li.querySelector('.lot-show').addEventListener('click', () => {
    lotMap.show(lot.id);
    highlight(lot.id);
  });
  fill(li, lot);
  return li;
}

function fill(li, lot) {
  const stale = isStale(lot);
  li.classList.toggle('is-stale', stale);
  li.dataset.status = stale ? 'unknown' : lot.status;
  li.dataset.free = hasCount(lot) ? String(lot.free) : '';
  li.querySelector('.lot-name').textContent = lot.name;
  li.querySelector('.lot-kind').textContent = t(`kind.${lot.kind}`);
  li.querySelector('.lot-free').textContent = countText(lot);
  li.querySelector('.lot-capacity').textContent = t('lot.of', { capacity: formatNumber(lot.capacity) });
  const badge = li.querySelector('.badge');
  badge.className = `badge ${statusClass(lot)}`;
  badge.textContent = statusText(lot);
  const trend = trendOf(lot);
  li.querySelector('.lot-trend').textContent = trend ? `${TREND_ARROWS[trend] ?? ''} ${t(`lot.trend.${trend}`)}` : '';
  const forecast = li.querySelector('.lot-forecast');
  forecast.textContent = hasCount(lot) && lot.forecast_30
    ? t('lot.forecast', { free: formatNumber(Math.round(lot.forecast_30.free)) })
    : (hasCount(lot) ? t('lot.noforecast') : '');
  li.querySelector('.lot-updated').textContent = lot.updated ? t('lot.updated', { time: formatTime(lot.updated) }) : '';
  const show = li.querySelector('.lot-show');
  show.textContent = t('lot.show');
  show.setAttribute('aria-label', `${t('lot.show')}: ${lot.name}`);
  show.hidden = !lotMap.available;
}

function render(lots) {
  list.replaceChildren(...[...lots].sort(byName).map(item));
  lotMap.reset(lots);
}

function highlight(id) {
  for (const li of list.children) li.classList.toggle('is-selected', li.dataset.lotId === id);
}

function showConnection(state) {
  const element = document.getElementById('connection');
  element.dataset.state = state;
  element.textContent = t(`conn.${state}`);
}

feed.addEventListener('reset', (event) => render(event.detail));
feed.addEventListener('lot', (event) => {
  const { lot, previous } = event.detail;
  const li = list.querySelector(`li[data-lot-id="${CSS.escape(lot.id)}"]`);
  if (li) fill(li, lot);
  lotMap.update(lot);
  // Only changes of status are announced: a count changing every few seconds read out for
  // every lot would drown everything else a screen-reader user does on the page.
  if (statusText(previous) !== statusText(lot)) {
    announcer.textContent = t('announce.status', { name: lot.name, status: statusText(lot) });
  }
});
feed.addEventListener('state', (event) => showConnection(event.detail));

function relabel() {
  document.title = `${t('map.title')} – ${config.city.name}`;
  for (const li of list.children) fill(li, feed.lots.get(li.dataset.lotId));
  lotMap.relabel();
  charging.fillConnectors();
  charging.render();
  showConnection(feed.state);
}

translate();
langButton(document.getElementById('lang'));
onLangChange(relabel);
for (const el of document.querySelectorAll('.city-name')) el.textContent = config.city.name;
cityLinks(document.getElementById('cities'));
document.getElementById('illustrative').hidden = !config.city.illustrative;
document.getElementById('nomap').hidden = lotMap.available;
document.title = `${t('map.title')} – ${config.city.name}`;
showConnection('connecting');
feed.start().catch((error) => {
  console.error(error);
  showConnection('failed');
});
charging.start().catch((error) => console.warn('charging points not available', error));
