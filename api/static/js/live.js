// The lots and their live state: GET v1/lots once, then the SSE stream v1/stream (one
// `event: lot` per lot with its current state on connect, then every change; `event: sign`
// likewise for what each sign shows). EventSource
// reconnects by itself and the stream starts with the current state again, so nothing is
// missed across a dropped connection. URLs are relative: the pages work behind a path prefix.

import { cityQuery } from './i18n.js';

const COUNTED = new Set(['open', 'almost_full', 'full']);

/**
 * A lot shows no count when its data is stale or unknown ("stale is not free"). A closed lot
 * is shown as closed whatever the age of its last count: that it is closed is known.
 */
export function isStale(lot) {
  if (lot.status === 'closed') return false;
  return lot.stale === true || lot.status === 'unknown' || lot.status == null;
}

export function hasCount(lot) {
  return !isStale(lot) && COUNTED.has(lot.status) && Number.isFinite(lot.free);
}

/**
 * Where the lot is heading: its own `trend` if the API gives one, else the 30-minute forecast
 * against the count now (a move of at least 5 % of capacity, at least 2 spaces, counts).
 */
export function trendOf(lot) {
  if (typeof lot.trend === 'string') return lot.trend;
  const forecast = lot.forecast_30;
  if (!hasCount(lot) || !forecast || !Number.isFinite(forecast.free)) return null;
  const threshold = Math.max(2, 0.05 * (lot.capacity || 0));
  const change = forecast.free - lot.free;
  if (change <= -threshold) return 'filling';
  if (change >= threshold) return 'emptying';
  return 'steady';
}

export class LotFeed extends EventTarget {
  constructor() {
    super();
    this.lots = new Map();
    this.state = 'connecting';
    this.source = null;
  }

  async load() {
    const response = await fetch(`v1/lots?limit=1000&${cityQuery}`, { headers: { Accept: 'application/json' } });
    if (!response.ok) throw new Error(`v1/lots: HTTP ${response.status}`);
    const body = await response.json();
    this.lots = new Map(body.lots.map((lot) => [lot.id, lot]));
    this.dispatchEvent(new CustomEvent('reset', { detail: [...this.lots.values()] }));
  }

  connect() {
    this.source = new EventSource(`v1/stream?${cityQuery}`);
    this.source.addEventListener('open', () => this.setState('live'));
    this.source.addEventListener('error', () => {
      this.setState(this.source.readyState === EventSource.CLOSED ? 'failed' : 'lost');
    });
    this.source.addEventListener('lot', (event) => this.apply(JSON.parse(event.data)));
    // what a sign confirmed showing: {sign_id, content: {lines}, shown_since}
    this.source.addEventListener('sign', (event) => {
      this.dispatchEvent(new CustomEvent('sign', { detail: JSON.parse(event.data) }));
    });
  }

  apply(update) {
    const id = update.id ?? update.lot_id;
    const previous = this.lots.get(id);
    if (!previous) {
      // A lot the page has not seen (config changed): its name and place come from v1/lots.
      if (!this.reloading) {
        this.reloading = this.load().catch(() => {}).finally(() => { this.reloading = null; });
      }
      return;
    }
    const lot = { ...previous, ...update, id };
    if (!('stale' in update) && 'status' in update) lot.stale = update.status === 'unknown';
    this.lots.set(id, lot);
    this.dispatchEvent(new CustomEvent('lot', { detail: { lot, previous } }));
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
  }

  async start() {
    await this.load();
    this.connect();
  }
}
