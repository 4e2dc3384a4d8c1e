// Texts of the pages in German (the default) and English, and number/time formatting in the
// city's timezone. Elements with data-i18n="key" get their text from here; the language
// button switches without a reload and keeps the choice in the URL (?lang=en).

const TEXTS = {
  de: {
    'lang.switch': 'English',
    'cities.label': 'Städte',
    'lang.switch.label': 'Switch to English',
    'skip': 'Zur Liste der Parkplätze springen',
    'map.title': 'Freie Parkplätze',
    'map.subtitle': 'Live-Belegung der Parkhäuser und Parkplätze',
    'map.region': 'Karte der Parkplätze',
    'map.list': 'Alle Parkplätze',
    'map.nomap': 'Die Karte ist nicht verfügbar; die Liste enthält alle Parkplätze.',
    'map.illustrative': 'Beispieldaten – nicht der reale Bestand der Stadt.',
    'map.legend': 'Legende',
    'conn.live': 'Live',
    'conn.connecting': 'Verbinde …',
    'conn.lost': 'Verbindung unterbrochen – neuer Versuch läuft',
    'conn.failed': 'Daten konnten nicht geladen werden',
    'status.open': 'frei',
    'status.almost_full': 'fast voll',
    'status.full': 'besetzt',
    'status.closed': 'geschlossen',
    'status.unknown': 'keine aktuellen Daten',
    'kind.garage': 'Parkhaus',
    'kind.surface': 'Parkplatz',
    'kind.on_street': 'Straßenparken',
    'lot.free': '{free} frei',
    'lot.of': 'von {capacity}',
    'lot.nofree': '–',
    'lot.updated': 'Stand {time}',
    'lot.forecast': 'in 30 Min.: ~{free} frei',
    'lot.noforecast': 'keine Prognose',
    'lot.trend.filling': 'füllt sich',
    'lot.trend.emptying': 'leert sich',
    'lot.trend.steady': 'gleichbleibend',
    'lot.label': '{name}: {count}, {status}',
    'lot.show': 'Auf der Karte zeigen',
    'announce.status': '{name}: jetzt {status}',
    'kiosk.title': 'Parkleitsystem {city}',
    'kiosk.view.map': 'Karte',
    'kiosk.view.signs': 'Anzeigetafeln',
    'kiosk.view.forecast': 'Prognose für heute',
    'kiosk.signs.none': 'Keine Anzeigetafeln eingerichtet.',
    'kiosk.signs.waiting': 'noch keine Anzeige bestätigt',
    'kiosk.free.total': '{free} freie Plätze in {lots} Parkhäusern und -plätzen',
    'kiosk.forecast.chart': 'Belegung der Stadt heute',
    'kiosk.forecast.actual': 'heute',
    'kiosk.forecast.typical': 'üblich an diesem Wochentag',
    'kiosk.forecast.model': 'Prognose',
    'kiosk.forecast.lot': 'Parkplatz',
    'kiosk.forecast.now': 'jetzt frei',
    'kiosk.forecast.in': 'in {minutes} Min.',
    'dash.title': 'Dashboard Parkraum',
    'dash.controls': 'Auswahl',
    'dash.scope': 'Bereich',
    'dash.scope.city': 'Ganze Stadt',
    'dash.period': 'Zeitraum',
    'dash.period.1': 'Letzte 24 Stunden',
    'dash.period.7': 'Letzte 7 Tage',
    'dash.period.28': 'Letzte 28 Tage',
    'dash.csv': 'CSV herunterladen',
    'dash.loading': 'Lade …',
    'dash.nodata': 'Keine Daten im Zeitraum.',
    'dash.error': 'Fehler beim Laden: {error}',
    'dash.occupancy': 'Belegung im Zeitverlauf',
    'dash.occupancy.hint': 'Zum Vergrößern einen Bereich mit der Maus markieren, Doppelklick setzt zurück.',
    'dash.occupancy.city': 'Stadt (%)',
    'dash.occupancy.lot': '{name} (%)',
    'dash.occupancy.target': 'Zielwert 85 %',
    'dash.heatmap': 'Belegung nach Wochenstunde',
    'dash.heatmap.caption': 'Mittlere Belegung in Prozent nach Wochentag und Uhrzeit ({scope})',
    'dash.target': 'Anteil der Zeit über 85 % Belegung',
    'dash.target.lot': 'Parkplatz',
    'dash.target.share': 'Anteil über 85 %',
    'dash.target.hours': 'Stunden über 85 %',
    'dash.target.hours_total': 'Stunden mit Daten',
    'dash.forecast': 'Prognose und Wirklichkeit',
    'dash.forecast.horizon': 'Vorhersage {minutes} Min. voraus',
    'dash.forecast.actual': 'tatsächlich frei',
    'dash.forecast.model': 'vorhergesagt frei',
    'dash.forecast.backtest': 'Rückrechnung (Backtest)',
    'dash.forecast.backtest.title': 'Prognosen, die das Modell nachträglich aus den Daten vor jedem Zeitpunkt berechnet hat, bis Live-Prognosen den Zeitraum füllen',
    'dash.forecast.p10': '10-%-Grenze',
    'dash.forecast.p90': '90-%-Grenze',
    'dash.forecast.observed': 'Mittlerer absoluter Fehler im Zeitraum: {mae} Plätze ({points} Werte)',
    'dash.forecast.observed.backtest': 'Mittlerer absoluter Fehler im Zeitraum: {mae} Plätze ({points} Werte, davon {backtest} aus der Rückrechnung)',
    'dash.forecast.published': 'Veröffentlichter Fehler (MAE)',
    'dash.forecast.mae': 'MAE (Plätze)',
    'dash.forecast.unit': 'freie Plätze',
    'dash.forecast.rate': 'MAE (% der Kapazität)',
    'dash.forecast.days': 'Tage',
    'dash.forecast.points': 'Werte',
    'dash.forecast.backtest_points': 'davon Rückrechnung',
    'dash.horizon': 'Vorlauf',
    'dash.sensors': 'Zustand der Sensoren',
    'dash.sensors.summary': '{sensors} Sensoren: {silent} stumm, {stuck} hängen, {battery} Batterie schwach, {jumps} Zählersprünge; {gateways} Gateways, davon {silentGateways} stumm',
    'dash.sensors.lot': 'Parkplatz',
    'dash.sensors.counting': 'Zählung',
    'dash.sensors.count': 'Sensoren',
    'dash.sensors.silent': 'stumm',
    'dash.sensors.stuck': 'hängt',
    'dash.sensors.battery': 'Batterie schwach',
    'dash.sensors.counterJump': 'Zählersprung',
    'dash.flag.counter_jump': 'Zählersprung',
    'dash.sensors.quality': 'Datenqualität',
    'dash.sensors.flags': 'Hinweise',
    'dash.sensors.problems': 'Auffällige Sensoren',
    'dash.sensors.sensor': 'Sensor',
    'dash.sensors.lastSeen': 'zuletzt gehört',
    'dash.sensors.voltage': 'Batterie (V)',
    'dash.sensors.problem': 'Problem',
    'dash.sensors.gateways': 'Gateways',
    'dash.sensors.gateway': 'Gateway',
    'dash.sensors.gatewayState': 'Zustand',
    'dash.sensors.ok': 'in Ordnung',
    'counting.counter': 'Zähler',
    'counting.bays': 'Stellplatzsensoren',
    'dash.signs': 'Anzeigetafeln',
    'dash.signs.sign': 'Tafel',
    'dash.signs.shows': 'zeigt',
    'dash.signs.since': 'seit',
    'dash.signs.ack': 'letzte Bestätigung',
    'dash.signs.failures': 'Fehler in Folge',
    'dash.signs.lastError': 'letzter Fehler',
    'dash.signlog': 'Protokoll der Anzeigetafeln',
    'dash.signlog.time': 'Zeit',
    'dash.signlog.ok': 'Ergebnis',
    'dash.signlog.okYes': 'angenommen',
    'dash.signlog.okNo': 'Fehler',
    'dash.time': 'Zeit',
    'weekday.1': 'Mo', 'weekday.2': 'Di', 'weekday.3': 'Mi', 'weekday.4': 'Do',
    'weekday.5': 'Fr', 'weekday.6': 'Sa', 'weekday.7': 'So',
    'console.title': 'Leitstelle',
    'console.login': 'Anmelden',
    'console.username': 'Benutzername',
    'console.password': 'Passwort',
    'console.login.submit': 'Anmelden',
    'console.login.wrong': 'Benutzername oder Passwort falsch.',
    'console.login.missing': 'Bitte Benutzername und Passwort eingeben.',
    'console.logout': 'Abmelden',
    'console.who': 'Angemeldet: {user} ({role})',
    'console.lots': 'Parkplätze',
    'console.lot': 'Parkplatz',
    'console.status': 'Zustand',
    'console.free': 'Frei',
    'console.free.of': '{free} von {capacity}',
    'console.action': 'Aktion',
    'console.reason': 'Grund',
    'console.reason.label': 'Grund für die Schließung von {name}',
    'console.reason.missing': 'Bitte einen Grund für die Schließung angeben.',
    'console.close': 'Schließen',
    'console.close.label': '{name} schließen',
    'console.open': 'Öffnen',
    'console.open.label': '{name} wieder öffnen',
    'console.audit': 'Protokoll',
    'console.audit.csv': 'Protokoll als CSV herunterladen',
    'console.audit.time': 'Zeit',
    'console.audit.who': 'Wer',
    'console.audit.action': 'Aktion',
    'console.audit.target': 'Ziel',
    'console.audit.detail': 'Grund',
    'role.planner': 'Planung',
    'role.operator': 'Betrieb',
    'role.admin': 'Administration',
    'actor.user': 'Person',
    'actor.key': 'API-Schlüssel',
  },
  en: {
    'lang.switch': 'Deutsch',
    'cities.label': 'Towns',
    'lang.switch.label': 'Auf Deutsch umschalten',
    'skip': 'Skip to the list of car parks',
    'map.title': 'Free parking spaces',
    'map.subtitle': 'Live occupancy of the car parks',
    'map.region': 'Map of the car parks',
    'map.list': 'All car parks',
    'map.nomap': 'The map is not available; the list holds every car park.',
    'map.illustrative': 'Example data – not the city’s real car parks.',
    'map.legend': 'Legend',
    'conn.live': 'Live',
    'conn.connecting': 'Connecting …',
    'conn.lost': 'Connection lost – retrying',
    'conn.failed': 'Could not load the data',
    'status.open': 'spaces free',
    'status.almost_full': 'almost full',
    'status.full': 'full',
    'status.closed': 'closed',
    'status.unknown': 'no current data',
    'kind.garage': 'Multi-storey car park',
    'kind.surface': 'Car park',
    'kind.on_street': 'On-street parking',
    'lot.free': '{free} free',
    'lot.of': 'of {capacity}',
    'lot.nofree': '–',
    'lot.updated': 'as of {time}',
    'lot.forecast': 'in 30 min: ~{free} free',
    'lot.noforecast': 'no forecast',
    'lot.trend.filling': 'filling up',
    'lot.trend.emptying': 'emptying',
    'lot.trend.steady': 'steady',
    'lot.label': '{name}: {count}, {status}',
    'lot.show': 'Show on the map',
    'announce.status': '{name}: now {status}',
    'kiosk.title': 'Parking guidance {city}',
    'kiosk.view.map': 'Map',
    'kiosk.view.signs': 'Signs',
    'kiosk.view.forecast': 'Today’s forecast',
    'kiosk.signs.none': 'No signs configured.',
    'kiosk.signs.waiting': 'nothing confirmed yet',
    'kiosk.free.total': '{free} free spaces in {lots} car parks',
    'kiosk.forecast.chart': 'City occupancy today',
    'kiosk.forecast.actual': 'today',
    'kiosk.forecast.typical': 'usual on this weekday',
    'kiosk.forecast.model': 'forecast',
    'kiosk.forecast.lot': 'Car park',
    'kiosk.forecast.now': 'free now',
    'kiosk.forecast.in': 'in {minutes} min',
    'dash.title': 'Parking dashboard',
    'dash.controls': 'Selection',
    'dash.scope': 'Scope',
    'dash.scope.city': 'Whole city',
    'dash.period': 'Period',
    'dash.period.1': 'Last 24 hours',
    'dash.period.7': 'Last 7 days',
    'dash.period.28': 'Last 28 days',
    'dash.csv': 'Download CSV',
    'dash.loading': 'Loading …',
    'dash.nodata': 'No data in this period.',
    'dash.error': 'Could not load: {error}',
    'dash.occupancy': 'Occupancy over time',
    'dash.occupancy.hint': 'Drag across the chart to zoom in, double-click to reset.',
    'dash.occupancy.city': 'City (%)',
    'dash.occupancy.lot': '{name} (%)',
    'dash.occupancy.target': 'Target 85 %',
    'dash.heatmap': 'Occupancy by hour of week',
    'dash.heatmap.caption': 'Mean occupancy in percent by weekday and hour ({scope})',
    'dash.target': 'Share of time above 85 % occupancy',
    'dash.target.lot': 'Car park',
    'dash.target.share': 'Share above 85 %',
    'dash.target.hours': 'Hours above 85 %',
    'dash.target.hours_total': 'Hours with data',
    'dash.forecast': 'Forecast and actual',
    'dash.forecast.horizon': 'Forecast {minutes} min ahead',
    'dash.forecast.actual': 'actually free',
    'dash.forecast.model': 'forecast free',
    'dash.forecast.backtest': 'backtest (computed afterwards)',
    'dash.forecast.backtest.title': 'Forecasts the model computed afterwards from the data before each time, until live forecasts fill the period',
    'dash.forecast.p10': '10 % bound',
    'dash.forecast.p90': '90 % bound',
    'dash.forecast.observed': 'Mean absolute error in this period: {mae} spaces ({points} values)',
    'dash.forecast.observed.backtest': 'Mean absolute error in this period: {mae} spaces ({points} values, {backtest} of them backtest)',
    'dash.forecast.published': 'Published error (MAE)',
    'dash.forecast.mae': 'MAE (spaces)',
    'dash.forecast.unit': 'free spaces',
    'dash.forecast.rate': 'MAE (% of capacity)',
    'dash.forecast.days': 'Days',
    'dash.forecast.points': 'Values',
    'dash.forecast.backtest_points': 'of them backtest',
    'dash.horizon': 'Lead time',
    'dash.sensors': 'Sensor health',
    'dash.sensors.summary': '{sensors} sensors: {silent} silent, {stuck} stuck, {battery} low battery, {jumps} counter jumps; {gateways} gateways, {silentGateways} of them silent',
    'dash.sensors.lot': 'Car park',
    'dash.sensors.counting': 'Counting',
    'dash.sensors.count': 'Sensors',
    'dash.sensors.silent': 'silent',
    'dash.sensors.stuck': 'stuck',
    'dash.sensors.battery': 'low battery',
    'dash.sensors.counterJump': 'counter jump',
    'dash.flag.counter_jump': 'counter jump',
    'dash.sensors.quality': 'Data quality',
    'dash.sensors.flags': 'Notes',
    'dash.sensors.problems': 'Sensors needing attention',
    'dash.sensors.sensor': 'Sensor',
    'dash.sensors.lastSeen': 'last heard',
    'dash.sensors.voltage': 'Battery (V)',
    'dash.sensors.problem': 'Problem',
    'dash.sensors.gateways': 'Gateways',
    'dash.sensors.gateway': 'Gateway',
    'dash.sensors.gatewayState': 'State',
    'dash.sensors.ok': 'ok',
    'counting.counter': 'counter',
    'counting.bays': 'bay sensors',
    'dash.signs': 'Signs',
    'dash.signs.sign': 'Sign',
    'dash.signs.shows': 'shows',
    'dash.signs.since': 'since',
    'dash.signs.ack': 'last acknowledged',
    'dash.signs.failures': 'failures in a row',
    'dash.signs.lastError': 'last error',
    'dash.signlog': 'Sign log',
    'dash.signlog.time': 'Time',
    'dash.signlog.ok': 'Result',
    'dash.signlog.okYes': 'accepted',
    'dash.signlog.okNo': 'failed',
    'dash.time': 'Time',
    'weekday.1': 'Mon', 'weekday.2': 'Tue', 'weekday.3': 'Wed', 'weekday.4': 'Thu',
    'weekday.5': 'Fri', 'weekday.6': 'Sat', 'weekday.7': 'Sun',
    'console.title': 'Operator console',
    'console.login': 'Log in',
    'console.username': 'User name',
    'console.password': 'Password',
    'console.login.submit': 'Log in',
    'console.login.wrong': 'Wrong user name or password.',
    'console.login.missing': 'Please enter user name and password.',
    'console.logout': 'Log out',
    'console.who': 'Logged in: {user} ({role})',
    'console.lots': 'Car parks',
    'console.lot': 'Car park',
    'console.status': 'Status',
    'console.free': 'Free',
    'console.free.of': '{free} of {capacity}',
    'console.action': 'Action',
    'console.reason': 'Reason',
    'console.reason.label': 'Reason for closing {name}',
    'console.reason.missing': 'Please give a reason for the closure.',
    'console.close': 'Close',
    'console.close.label': 'Close {name}',
    'console.open': 'Open',
    'console.open.label': 'Open {name} again',
    'console.audit': 'Audit log',
    'console.audit.csv': 'Download the audit log as CSV',
    'console.audit.time': 'Time',
    'console.audit.who': 'Who',
    'console.audit.action': 'Action',
    'console.audit.target': 'Target',
    'console.audit.detail': 'Reason',
    'role.planner': 'planner',
    'role.operator': 'operator',
    'role.admin': 'admin',
    'actor.user': 'person',
    'actor.key': 'API key',
  },
};

export const config = JSON.parse(document.getElementById('parkleit-config').textContent);
let lang = config.lang === 'en' ? 'en' : 'de';
const listeners = [];
// The server's clock, not the browser's: a kiosk PC's clock may be off, and the server's is
// the one its data was stamped with (config.now: the moment the page was served).
const clockOffsetMs = config.now ? Date.parse(config.now) - Date.now() : 0;

/** The current moment by the server's clock. */
export function serverNow() {
  return new Date(Date.now() + clockOffsetMs);
}

/** The query naming this page's city: every API request of the page carries it. */
export const cityQuery = `city=${encodeURIComponent(config.city.id)}`;

/** `path` of this site for this page's city, in the current language. */
export function cityUrl(path, cityId = config.city.id) {
  const url = new URL(path, window.location.href);
  url.searchParams.set('city', cityId);
  if (lang === 'en') url.searchParams.set('lang', 'en');
  return url.pathname + url.search;
}

export function currentLang() { return lang; }

/** The text of `key` in the current language, with {placeholders} filled in. */
export function t(key, params = {}) {
  const text = TEXTS[lang][key] ?? TEXTS.de[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in params ? String(params[name]) : `{${name}}`));
}

export function formatNumber(value, digits = 0) {
  return new Intl.NumberFormat(lang, { maximumFractionDigits: digits, minimumFractionDigits: digits })
    .format(value);
}

export function formatPercent(share, digits = 0) {
  return new Intl.NumberFormat(lang, { style: 'percent', maximumFractionDigits: digits,
    minimumFractionDigits: digits }).format(share);
}

/** A time of day (or date and time) in the city's timezone. */
export function formatTime(iso, withDate = false) {
  if (!iso) return '–';
  const options = { hour: '2-digit', minute: '2-digit', timeZone: config.city.timezone };
  if (withDate) Object.assign(options, { day: '2-digit', month: '2-digit' });
  return new Intl.DateTimeFormat(lang, options).format(new Date(iso));
}

/** Fill every [data-i18n] element (and [data-i18n-label] aria-labels) in `root`. */
export function translate(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-label]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nLabel));
  }
}

export function setLang(next) {
  lang = next === 'en' ? 'en' : 'de';
  document.documentElement.lang = lang;
  const url = new URL(window.location.href);
  if (lang === 'de') url.searchParams.delete('lang'); else url.searchParams.set('lang', lang);
  window.history.replaceState(null, '', url);
  translate();
  for (const listener of listeners) listener(lang);
}

export function onLangChange(listener) { listeners.push(listener); }

/** Fill `nav` with links to this page for each city of the installation (hidden with one). */
export function cityLinks(nav) {
  const cities = config.cities ?? [];
  nav.hidden = cities.length < 2;
  const render = () => nav.replaceChildren(...cities.map((city) => {
    const link = document.createElement('a');
    link.textContent = city.name;
    link.href = cityUrl(window.location.pathname, city.id);
    if (city.id === config.city.id) link.setAttribute('aria-current', 'page');
    return link;
  }));
  render();
  onLangChange(render);
}

/** Wire a button that toggles German/English. */
export function langButton(button) {
  const label = () => {
    button.textContent = t('lang.switch');
    button.setAttribute('aria-label', t('lang.switch.label'));
    button.lang = lang === 'de' ? 'en' : 'de';
  };
  label();
  button.addEventListener('click', () => { setLang(lang === 'de' ? 'en' : 'de'); label(); });
}

document.documentElement.lang = lang;
