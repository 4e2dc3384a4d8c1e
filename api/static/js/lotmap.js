// The lots on a Leaflet map, one focusable marker per lot showing its free count, coloured by
// status (and labelled in words: colour is never the only cue). Without a tile URL the map has
// no tiles at all and the lots stand on a plain background by their coordinates, so the page
// works offline and sends no visitor to a third party.

import { config, formatNumber, formatTime, t } from './i18n.js';
import { hasCount, isStale, trendOf } from './live.js';

let L = null;
try {
  L = await import('../vendor/leaflet/leaflet-src.esm.js');
} catch (error) {
  console.warn('Leaflet not available; showing the list only', error);
}

export function statusClass(lot) {
  return isStale(lot) ? 'status-unknown' : `status-${lot.status}`;
}

export function statusText(lot) {
  return t(`status.${isStale(lot) ? 'unknown' : lot.status}`);
}

export function countText(lot) {
  return hasCount(lot) ? t('lot.free', { free: formatNumber(lot.free) }) : t('lot.nofree');
}

/** One sentence for screen readers and tooltips: name, count, status, trend, forecast. */
export function lotSentence(lot) {
  const parts = [t('lot.label', { name: lot.name, count: countText(lot), status: statusText(lot) })];
  const trend = trendOf(lot);
  if (trend) parts.push(t(`lot.trend.${trend}`));
  if (hasCount(lot) && lot.forecast_30) {
    parts.push(t('lot.forecast', { free: formatNumber(Math.round(lot.forecast_30.free)) }));
  }
  if (lot.updated) parts.push(t('lot.updated', { time: formatTime(lot.updated) }));
  return parts.join('. ');
}

function popupHtml(lot) {
  const escape = (text) => String(text).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<strong>${escape(lot.name)}</strong><br>${escape(lotSentence(lot).split('. ').slice(1).join(' · '))}`;
}

export class LotMap {
  /** `element`: the map container; `onSelect(id)` when a marker is activated. */
  constructor(element, { onSelect = () => {}, interactive = true } = {}) {
    this.element = element;
    this.markers = new Map();
    this.onSelect = onSelect;
    this.available = L !== null;
    if (!this.available) {
      element.hidden = true;
      return;
    }
    this.map = L.map(element, {
      zoomControl: interactive, keyboard: interactive, dragging: interactive,
      scrollWheelZoom: interactive, attributionControl: Boolean(config.tiles.url),
    });
    if (config.tiles.url) {
      L.tileLayer(config.tiles.url, { attribution: config.tiles.attribution, maxZoom: 19 })
        .addTo(this.map);
    } else {
      element.classList.add('no-tiles');
    }
    L.control.scale({ imperial: false }).addTo(this.map);
    this.interactive = interactive;
    this.map.setView([51.05, 12.14], 14);
  }

  /** Draw every lot (replacing what was there) and fit the view around them. */
  reset(lots) {
    if (!this.available) return;
    for (const marker of this.markers.values()) marker.remove();
    this.markers.clear();
    const points = [];
    for (const lot of lots) {
      if (!Number.isFinite(lot.latitude) || !Number.isFinite(lot.longitude)) continue;
      const marker = L.marker([lot.latitude, lot.longitude], {
        icon: this.icon(lot), keyboard: this.interactive, riseOnHover: true,
      });
      marker.bindPopup(() => popupHtml(this.lots.get(lot.id) ?? lot));
      marker.on('click', () => this.onSelect(lot.id));
      marker.addTo(this.map);
      this.markers.set(lot.id, marker);
      points.push([lot.latitude, lot.longitude]);
    }
    this.lots = new Map(lots.map((lot) => [lot.id, lot]));
    for (const lot of lots) this.label(lot);
    // not animated: the view is final at once (a kiosk screenshot, the scale bar)
    if (points.length) this.map.fitBounds(points, { padding: [40, 40], maxZoom: 16, animate: false });
  }

  icon(lot) {
    const text = hasCount(lot) ? formatNumber(lot.free) : (lot.status === 'closed' ? '×' : '?');
    return L.divIcon({
      className: `lot-marker ${statusClass(lot)}`,
      html: `<span class="lot-pin" aria-hidden="true">${text}</span>`,
      iconSize: [44, 44], iconAnchor: [22, 22], popupAnchor: [0, -20],
    });
  }

  label(lot) {
    const element = this.markers.get(lot.id)?.getElement();
    if (!element) return;
    element.setAttribute('aria-label', lotSentence(lot));
    element.title = lotSentence(lot);
    element.dataset.lotId = lot.id;
    if (!this.interactive) {
      // Nothing to press (the kiosk): a picture with the same sentence as its name, since an
      // aria-label on an element without a role is prohibited (and read by no screen reader).
      element.removeAttribute('tabindex');
      element.setAttribute('role', 'img');
    }
  }

  update(lot) {
    const marker = this.markers.get(lot.id);
    if (!marker) return;
    this.lots.set(lot.id, lot);
    const focused = document.activeElement === marker.getElement();
    marker.setIcon(this.icon(lot));
    this.label(lot);
    if (marker.isPopupOpen()) marker.setPopupContent(popupHtml(lot));
    if (focused) marker.getElement()?.focus();  // a new icon element must not lose the focus
  }

  /** Re-label every marker (after a language switch). */
  relabel() {
    if (!this.available) return;
    for (const lot of this.lots?.values() ?? []) this.update(lot);
  }

  /**
   * Markers of another layer (the charging stations), replacing the ones drawn before:
   * `items` of { id, latitude, longitude, className, text, label }, each focusable and named
   * by its label like a lot's.
   */
  setOverlay(items) {
    if (!this.available) return;
    for (const marker of this.overlay?.values() ?? []) marker.remove();
    this.overlay = new Map();
    const escape = (text) => String(text).replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
    for (const item of items) {
      if (!Number.isFinite(item.latitude) || !Number.isFinite(item.longitude)) continue;
      const marker = L.marker([item.latitude, item.longitude], {
        icon: L.divIcon({
          className: item.className, html: `<span class="charge-pin" aria-hidden="true">${escape(item.text)}</span>`,
          iconSize: [40, 28], iconAnchor: [20, 14], popupAnchor: [0, -12],
        }),
        keyboard: this.interactive, riseOnHover: true,
      });
      marker.bindPopup(escape(item.label));
      marker.addTo(this.map);
      const element = marker.getElement();
      if (element) {
        element.setAttribute('aria-label', item.label);
        element.title = item.label;
        element.dataset.stationId = item.id;
      }
      this.overlay.set(item.id, marker);
    }
  }

  showOverlay(id) {
    const marker = this.overlay?.get(id);
    if (!marker) return;
    this.map.setView(marker.getLatLng(), Math.max(this.map.getZoom(), 15));
    marker.openPopup();
  }

  show(id) {
    const marker = this.markers.get(id);
    if (!marker) return;
    this.map.setView(marker.getLatLng(), Math.max(this.map.getZoom(), 15));
    marker.openPopup();
  }

  resize() {
    if (this.available) this.map.invalidateSize();
  }
}
