// The charging layer of the drivers' map: every charging station as a marker and in a list
// (its accessible twin), each point's status in plain words, filtered by what a driver needs:
// a free point, a connector type, a minimum power. A point counts as free only when it is
// available and no car stands on its bay (the API reads it with its bay sensors).

import { element } from './dom.js';
import { config, cityQuery, formatNumber, t } from './i18n.js';

const REFRESH_MS = 30_000;
const CONNECTORS = {
  IEC_62196_T2: 'Typ 2', IEC_62196_T2_COMBO: 'CCS', IEC_62196_T1: 'Typ 1',
  IEC_62196_T1_COMBO: 'CCS Typ 1', CHADEMO: 'CHAdeMO', DOMESTIC_F: 'Schuko',
};

export function connectorName(standard) { return CONNECTORS[standard] ?? standard; }

/** The word key of a point's state: free, occupied (a car on its bay) or its OCPI status. */
export function pointState(evse) {
  if (evse.free) return 'free';
  if (evse.status === 'AVAILABLE' && evse.bay_occupied) return 'occupied';
  return evse.status.toLowerCase();
}

function powerKw(evse) {
  return Math.max(0, ...evse.connectors.map((c) => c.max_electric_power / 1000));
}

function pointText(evse, number) {
  const plugs = evse.connectors.map((c) => `${connectorName(c.standard)} ${formatNumber(c.max_electric_power / 1000)} kW`);
  return t('charge.point', { number, state: t(`charge.state.${pointState(evse)}`), plugs: plugs.join(', ') });
}

export class ChargeLayer {
  constructor({ section, lotMap }) {
    this.section = section;
    this.lotMap = lotMap;
    this.list = section.querySelector('#charge-list');
    this.count = section.querySelector('#charge-count');
    this.filter = { free: false, connector: '', power: 0 };
    this.locations = [];
    section.querySelector('#charge-free').addEventListener('change', (event) => {
      this.filter.free = event.target.checked; this.render();
    });
    section.querySelector('#charge-connector').addEventListener('change', (event) => {
      this.filter.connector = event.target.value; this.render();
    });
    section.querySelector('#charge-power').addEventListener('change', (event) => {
      this.filter.power = Number(event.target.value); this.render();
    });
    section.querySelector('form').addEventListener('submit', (event) => event.preventDefault());
  }

  async start() {
    await this.load();
    setInterval(() => this.load().catch((error) => console.warn(error)), REFRESH_MS);
  }

  async load() {
    const response = await fetch(`v1/charging/locations?${cityQuery}`, { headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    this.locations = (await response.json()).locations.filter((l) => l.city_id === config.city.id);
    this.section.hidden = !this.locations.length;
    this.fillConnectors();
    this.render();
  }

  matches(evse) {
    const { free, connector, power } = this.filter;
    return (!free || evse.free)
      && (!connector || evse.connectors.some((c) => c.standard === connector))
      && powerKw(evse) >= power;
  }

  fillConnectors() {
    const select = this.section.querySelector('#charge-connector');
    const standards = [...new Set(this.locations.flatMap((l) => l.evses.flatMap((e) => e.connectors.map((c) => c.standard))))].sort();
    const chosen = select.value;
    select.replaceChildren(new Option(t('charge.any'), ''),
      ...standards.map((standard) => new Option(connectorName(standard), standard)));
    select.value = standards.includes(chosen) ? chosen : '';
    const power = this.section.querySelector('#charge-power');
    const kw = power.value || '0';
    power.replaceChildren(new Option(t('charge.any'), '0'),
      ...[11, 22, 50, 150].map((value) => new Option(t('charge.atLeast', { kw: value }), String(value))));
    power.value = kw;
  }

  /** Draw the stations that have a point the filter lets through, in the list and on the map. */
  render() {
    const shown = this.locations
      .map((location) => ({ location, evses: location.evses.filter((evse) => this.matches(evse)) }))
      .filter((entry) => entry.evses.length)
      .sort((a, b) => a.location.name.localeCompare(b.location.name, 'de'));
    this.list.replaceChildren(...shown.map((entry) => this.item(entry)));
    this.count.textContent = t('charge.count', { stations: formatNumber(shown.length) });
    this.lotMap.setOverlay(shown.map(({ location, evses }) => {
      const free = evses.filter((evse) => evse.free).length;
      return {
        id: location.id, latitude: Number(location.coordinates.latitude),
        longitude: Number(location.coordinates.longitude),
        className: `charge-marker ${free ? 'charge-free' : 'charge-none'}`,
        text: `⚡${formatNumber(free)}`, label: this.sentence(location, evses),
      };
    }));
  }

  sentence(location, evses) {
    const free = evses.filter((evse) => evse.free).length;
    return t('charge.label', { name: location.name, free: formatNumber(free), points: formatNumber(evses.length) });
  }

  item({ location, evses }) {
    const li = element('li', { className: 'charge-station' });
    li.dataset.stationId = location.id;
    const points = element('ul', { className: 'charge-points' });
    for (const evse of evses) {
      const point = element('li', { textContent: pointText(evse, location.evses.indexOf(evse) + 1) });
      point.dataset.evseId = evse.evse_id;
      point.dataset.state = pointState(evse);
      points.append(point);
    }
    li.append(element('h3', { textContent: location.name }),
      element('p', { textContent: this.sentence(location, evses).split(': ').slice(1).join(': ') }),
      points);
    if (this.lotMap.available) {
      const show = element('button', { type: 'button', className: 'lot-show', textContent: t('lot.show') });
      show.setAttribute('aria-label', `${t('lot.show')}: ${location.name}`);
      show.addEventListener('click', () => this.lotMap.showOverlay(location.id));
      li.append(show);
    }
    return li;
  }
}
