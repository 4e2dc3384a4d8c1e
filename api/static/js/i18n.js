// Texts of the pages in German (the default) and English, and number/time formatting in the
// city's timezone. Elements with data-i18n="key" get their text from here; the language
// button switches without a reload and keeps the choice in the URL (?lang=en).

// Every text by key: [German, English].
const TEXTS = {
  'lang.switch': ['English', 'Deutsch'],
  'cities.label': ['Städte', 'Towns'],
  'lang.switch.label': ['Switch to English', 'Auf Deutsch umschalten'],
  'skip': ['Zur Liste der Parkplätze springen', 'Skip to the list of car parks'],
  'map.title': ['Freie Parkplätze', 'Free parking spaces'],
  'map.subtitle': [
    'Live-Belegung der Parkhäuser und Parkplätze',
    'Live occupancy of the car parks'],
  'map.region': ['Karte der Parkplätze', 'Map of the car parks'],
  'map.list': ['Alle Parkplätze', 'All car parks'],
  'map.nomap': [
    'Die Karte ist nicht verfügbar; die Liste enthält alle Parkplätze.',
    'The map is not available; the list holds every car park.'],
  'map.illustrative': [
    'Beispieldaten – nicht der reale Bestand der Stadt.',
    'Example data – not the city’s real car parks.'],
  'map.legend': ['Legende', 'Legend'],
  'conn.live': ['Live', 'Live'],
  'conn.connecting': ['Verbinde …', 'Connecting …'],
  'conn.lost': ['Verbindung unterbrochen – neuer Versuch läuft', 'Connection lost – retrying'],
  'conn.failed': ['Daten konnten nicht geladen werden', 'Could not load the data'],
  'status.open': ['frei', 'spaces free'],
  'status.almost_full': ['fast voll', 'almost full'],
  'status.full': ['besetzt', 'full'],
  'status.closed': ['geschlossen', 'closed'],
  'status.unknown': ['keine aktuellen Daten', 'no current data'],
  'kind.garage': ['Parkhaus', 'Multi-storey car park'],
  'kind.surface': ['Parkplatz', 'Car park'],
  'kind.on_street': ['Straßenparken', 'On-street parking'],
  'lot.free': ['{free} frei', '{free} free'],
  'lot.of': ['von {capacity}', 'of {capacity}'],
  'lot.nofree': ['–', '–'],
  'lot.updated': ['Stand {time}', 'as of {time}'],
  'lot.forecast': ['in 30 Min.: ~{free} frei', 'in 30 min: ~{free} free'],
  'lot.noforecast': ['keine Prognose', 'no forecast'],
  'lot.trend.filling': ['füllt sich', 'filling up'],
  'lot.trend.emptying': ['leert sich', 'emptying'],
  'lot.trend.steady': ['gleichbleibend', 'steady'],
  'lot.label': ['{name}: {count}, {status}', '{name}: {count}, {status}'],
  'lot.show': ['Auf der Karte zeigen', 'Show on the map'],
  'charge.title': ['Ladestationen', 'Charging stations'],
  'charge.filter': ['Ladestationen filtern', 'Filter the charging stations'],
  'charge.freeOnly': ['nur mit freiem Ladepunkt', 'only with a free charging point'],
  'charge.connector': ['Stecker', 'Connector'],
  'charge.power': ['Leistung', 'Power'],
  'charge.any': ['alle', 'any'],
  'charge.atLeast': ['ab {kw} kW', 'at least {kw} kW'],
  'charge.count': ['{stations} Ladestationen passen', '{stations} charging stations match'],
  'charge.label': ['{name}: {free} von {points} Ladepunkten frei', '{name}: {free} of {points} charging points free'],
  'charge.point': ['Ladepunkt {number}: {state} ({plugs})', 'Charging point {number}: {state} ({plugs})'],
  'charge.state.free': ['frei', 'free'],
  'charge.state.occupied': ['ein Fahrzeug steht auf dem Platz', 'a car is on the bay'],
  'charge.state.blocked': ['blockiert – ein Fahrzeug parkt, ohne zu laden', 'blocked – a car is parked without charging'],
  'charge.state.charging': ['belegt, es wird geladen', 'in use, charging'],
  'charge.state.available': ['frei', 'free'],
  'charge.state.inoperative': ['außer Betrieb', 'not in operation'],
  'charge.state.outoforder': ['gestört', 'out of order'],
  'charge.state.planned': ['in Planung', 'planned'],
  'charge.state.removed': ['abgebaut', 'removed'],
  'charge.state.reserved': ['reserviert', 'reserved'],
  'charge.state.unknown': ['Zustand unbekannt', 'status unknown'],
  'announce.status': ['{name}: jetzt {status}', '{name}: now {status}'],
  'kiosk.title': ['Parkleitsystem {city}', 'Parking guidance {city}'],
  'kiosk.view.map': ['Karte', 'Map'],
  'kiosk.view.signs': ['Anzeigetafeln', 'Signs'],
  'kiosk.view.forecast': ['Prognose für heute', 'Today’s forecast'],
  'kiosk.signs.none': ['Keine Anzeigetafeln eingerichtet.', 'No signs configured.'],
  'kiosk.signs.waiting': ['noch keine Anzeige bestätigt', 'nothing confirmed yet'],
  'kiosk.free.total': [
    '{free} freie Plätze in {lots} Parkhäusern und -plätzen',
    '{free} free spaces in {lots} car parks'],
  'kiosk.forecast.chart': ['Belegung der Stadt heute', 'City occupancy today'],
  'kiosk.forecast.actual': ['heute', 'today'],
  'kiosk.forecast.typical': ['üblich an diesem Wochentag', 'usual on this weekday'],
  'kiosk.forecast.model': ['Prognose', 'forecast'],
  'kiosk.forecast.lot': ['Parkplatz', 'Car park'],
  'kiosk.forecast.now': ['jetzt frei', 'free now'],
  'kiosk.forecast.in': ['in {minutes} Min.', 'in {minutes} min'],
  'dash.title': ['Dashboard Parkraum', 'Parking dashboard'],
  'dash.controls': ['Auswahl', 'Selection'],
  'dash.scope': ['Bereich', 'Scope'],
  'dash.scope.city': ['Ganze Stadt', 'Whole city'],
  'dash.period': ['Zeitraum', 'Period'],
  'dash.period.1': ['Letzte 24 Stunden', 'Last 24 hours'],
  'dash.period.7': ['Letzte 7 Tage', 'Last 7 days'],
  'dash.period.28': ['Letzte 28 Tage', 'Last 28 days'],
  'dash.csv': ['CSV herunterladen', 'Download CSV'],
  'dash.loading': ['Lade …', 'Loading …'],
  'dash.nodata': ['Keine Daten im Zeitraum.', 'No data in this period.'],
  'dash.error': ['Fehler beim Laden: {error}', 'Could not load: {error}'],
  'dash.occupancy': ['Belegung im Zeitverlauf', 'Occupancy over time'],
  'dash.occupancy.hint': [
    'Zum Vergrößern einen Bereich mit der Maus markieren, Doppelklick setzt zurück.',
    'Drag across the chart to zoom in, double-click to reset.'],
  'dash.occupancy.city': ['Stadt (%)', 'City (%)'],
  'dash.occupancy.lot': ['{name} (%)', '{name} (%)'],
  'dash.occupancy.target': ['Zielwert 85 %', 'Target 85 %'],
  'dash.heatmap': ['Belegung nach Wochenstunde', 'Occupancy by hour of week'],
  'dash.heatmap.caption': [
    'Mittlere Belegung in Prozent nach Wochentag und Uhrzeit ({scope})',
    'Mean occupancy in percent by weekday and hour ({scope})'],
  'dash.target': ['Anteil der Zeit über 85 % Belegung', 'Share of time above 85 % occupancy'],
  'dash.target.lot': ['Parkplatz', 'Car park'],
  'dash.target.share': ['Anteil über 85 %', 'Share above 85 %'],
  'dash.target.hours': ['Stunden über 85 %', 'Hours above 85 %'],
  'dash.target.hours_total': ['Stunden mit Daten', 'Hours with data'],
  'dash.forecast': ['Prognose und Wirklichkeit', 'Forecast and actual'],
  'dash.forecast.horizon': ['Vorhersage {minutes} Min. voraus', 'Forecast {minutes} min ahead'],
  'dash.forecast.actual': ['tatsächlich frei', 'actually free'],
  'dash.forecast.model': ['vorhergesagt frei', 'forecast free'],
  'dash.forecast.backtest': ['Rückrechnung (Backtest)', 'backtest (computed afterwards)'],
  'dash.forecast.backtest.title': [
    'Prognosen, die das Modell nachträglich aus den Daten vor jedem Zeitpunkt berechnet hat, bis Live-Prognosen den Zeitraum füllen',
    'Forecasts the model computed afterwards from the data before each time, until live forecasts fill the period'],
  'dash.forecast.p10': ['10-%-Grenze', '10 % bound'],
  'dash.forecast.p90': ['90-%-Grenze', '90 % bound'],
  'dash.forecast.observed': [
    'Mittlerer absoluter Fehler im Zeitraum: {mae} Plätze ({points} Werte)',
    'Mean absolute error in this period: {mae} spaces ({points} values)'],
  'dash.forecast.observed.backtest': [
    'Mittlerer absoluter Fehler im Zeitraum: {mae} Plätze ({points} Werte, davon {backtest} aus der Rückrechnung)',
    'Mean absolute error in this period: {mae} spaces ({points} values, {backtest} of them backtest)'],
  'dash.forecast.published': ['Veröffentlichter Fehler (MAE)', 'Published error (MAE)'],
  'dash.forecast.mae': ['MAE (Plätze)', 'MAE (spaces)'],
  'dash.forecast.unit': ['freie Plätze', 'free spaces'],
  'dash.forecast.rate': ['MAE (% der Kapazität)', 'MAE (% of capacity)'],
  'dash.forecast.days': ['Tage', 'Days'],
  'dash.forecast.points': ['Werte', 'Values'],
  'dash.forecast.backtest_points': ['davon Rückrechnung', 'of them backtest'],
  'dash.horizon': ['Vorlauf', 'Lead time'],
  'dash.sensors': ['Zustand der Sensoren', 'Sensor health'],
  'dash.sensors.summary': [
    '{sensors} Sensoren: {silent} stumm, {stuck} hängen, {battery} Batterie schwach, {jumps} Zählersprünge; {gateways} Gateways, davon {silentGateways} stumm',
    '{sensors} sensors: {silent} silent, {stuck} stuck, {battery} low battery, {jumps} counter jumps; {gateways} gateways, {silentGateways} of them silent'],
  'dash.sensors.lot': ['Parkplatz', 'Car park'],
  'dash.sensors.counting': ['Zählung', 'Counting'],
  'dash.sensors.count': ['Sensoren', 'Sensors'],
  'dash.sensors.silent': ['stumm', 'silent'],
  'dash.sensors.stuck': ['hängt', 'stuck'],
  'dash.sensors.battery': ['Batterie schwach', 'low battery'],
  'dash.sensors.counterJump': ['Zählersprung', 'counter jump'],
  'dash.flag.counter_jump': ['Zählersprung', 'counter jump'],
  'dash.sensors.quality': ['Datenqualität', 'Data quality'],
  'dash.sensors.flags': ['Hinweise', 'Notes'],
  'dash.sensors.problems': ['Auffällige Sensoren', 'Sensors needing attention'],
  'dash.sensors.sensor': ['Sensor', 'Sensor'],
  'dash.sensors.lastSeen': ['zuletzt gehört', 'last heard'],
  'dash.sensors.voltage': ['Batterie (V)', 'Battery (V)'],
  'dash.sensors.problem': ['Problem', 'Problem'],
  'dash.sensors.gateways': ['Gateways', 'Gateways'],
  'dash.sensors.gateway': ['Gateway', 'Gateway'],
  'dash.sensors.gatewayState': ['Zustand', 'State'],
  'dash.sensors.ok': ['in Ordnung', 'ok'],
  'counting.counter': ['Zähler', 'counter'],
  'counting.bays': ['Stellplatzsensoren', 'bay sensors'],
  'dash.chargers': ['Blockierte Ladepunkte', 'Blocked charging points'],
  'dash.chargers.hint': ['Stunden im Zeitraum, in denen ein Fahrzeug auf dem Ladeplatz stand, ohne zu laden (ab {minutes} Minuten), oder der Ladepunkt selbst „blockiert“ meldete.', 'Hours in the period when a vehicle stood on the charging bay without charging (from {minutes} minutes on), or the point itself reported “blocked”.'],
  'dash.chargers.none': ['Diese Stadt hat keine Ladepunkte.', 'This city has no charging points.'],
  'dash.chargers.point': ['Ladepunkt', 'Charging point'],
  'dash.chargers.station': ['Ladestation', 'Charging station'],
  'dash.chargers.bays': ['Stellplätze', 'Bays'],
  'dash.chargers.hours': ['blockiert (Stunden)', 'blocked (hours)'],
  'dash.chargers.share': ['Vergleich', 'Comparison'],
  'dash.chargers.barLabel': ['Blockierte Stunden von {point}', 'Blocked hours of {point}'],
  'dash.signs': ['Anzeigetafeln', 'Signs'],
  'dash.signs.sign': ['Tafel', 'Sign'],
  'dash.signs.shows': ['zeigt', 'shows'],
  'dash.signs.since': ['seit', 'since'],
  'dash.signs.ack': ['letzte Bestätigung', 'last acknowledged'],
  'dash.signs.failures': ['Fehler in Folge', 'failures in a row'],
  'dash.signs.lastError': ['letzter Fehler', 'last error'],
  'dash.signlog': ['Protokoll der Anzeigetafeln', 'Sign log'],
  'dash.signlog.time': ['Zeit', 'Time'],
  'dash.signlog.ok': ['Ergebnis', 'Result'],
  'dash.signlog.okYes': ['angenommen', 'accepted'],
  'dash.signlog.okNo': ['Fehler', 'failed'],
  'dash.time': ['Zeit', 'Time'],
  'weekday.1': ['Mo', 'Mon'],
  'weekday.2': ['Di', 'Tue'],
  'weekday.3': ['Mi', 'Wed'],
  'weekday.4': ['Do', 'Thu'],
  'weekday.5': ['Fr', 'Fri'],
  'weekday.6': ['Sa', 'Sat'],
  'weekday.7': ['So', 'Sun'],
  'console.title': ['Leitstelle', 'Operator console'],
  'console.login': ['Anmelden', 'Log in'],
  'console.username': ['Benutzername', 'User name'],
  'console.password': ['Passwort', 'Password'],
  'console.login.submit': ['Anmelden', 'Log in'],
  'console.login.wrong': ['Benutzername oder Passwort falsch.', 'Wrong user name or password.'],
  'console.login.missing': [
    'Bitte Benutzername und Passwort eingeben.',
    'Please enter user name and password.'],
  'console.logout': ['Abmelden', 'Log out'],
  'console.who': ['Angemeldet: {user} ({role})', 'Logged in: {user} ({role})'],
  'console.lots': ['Parkplätze', 'Car parks'],
  'console.lot': ['Parkplatz', 'Car park'],
  'console.status': ['Zustand', 'Status'],
  'console.free': ['Frei', 'Free'],
  'console.free.of': ['{free} von {capacity}', '{free} of {capacity}'],
  'console.action': ['Aktion', 'Action'],
  'console.reason': ['Grund', 'Reason'],
  'console.reason.label': ['Grund für die Schließung von {name}', 'Reason for closing {name}'],
  'console.reason.missing': [
    'Bitte einen Grund für die Schließung angeben.',
    'Please give a reason for the closure.'],
  'console.close': ['Schließen', 'Close'],
  'console.close.label': ['{name} schließen', 'Close {name}'],
  'console.open': ['Öffnen', 'Open'],
  'console.open.label': ['{name} wieder öffnen', 'Open {name} again'],
  'console.audit': ['Protokoll', 'Audit log'],
  'console.audit.csv': ['Protokoll als CSV herunterladen', 'Download the audit log as CSV'],
  'console.audit.time': ['Zeit', 'Time'],
  'console.audit.who': ['Wer', 'Who'],
  'console.audit.action': ['Aktion', 'Action'],
  'console.audit.target': ['Ziel', 'Target'],
  'console.audit.detail': ['Grund, Kommentar', 'Reason, comment'],
  'console.alarms': ['Offene Alarme', 'Open alarms'],
  'console.alarms.none': ['Keine offenen Alarme.', 'No open alarms.'],
  'console.alarm.severity': ['Schwere', 'Severity'],
  'console.alarm.kind': ['Alarm', 'Alarm'],
  'console.alarm.target': ['Betroffen', 'Affected'],
  'console.alarm.since': ['Seit', 'Since'],
  'console.alarm.ack': ['Quittierung', 'Acknowledgement'],
  'console.alarm.acked': ['quittiert von {user} um {time}: {comment}',
    'acknowledged by {user} at {time}: {comment}'],
  'console.alarm.comment': ['Kommentar', 'Comment'],
  'console.alarm.comment.label': ['Kommentar zur Quittierung: {kind}, {target}',
    'Comment acknowledging: {kind}, {target}'],
  'console.alarm.comment.missing': [
    'Bitte einen Kommentar zur Quittierung angeben.',
    'Please give a comment with the acknowledgement.'],
  'console.alarm.ackButton': ['Quittieren', 'Acknowledge'],
  'console.alarm.ackButton.label': ['Quittieren: {kind}, {target}', 'Acknowledge: {kind}, {target}'],
  'severity.critical': ['kritisch', 'critical'],
  'severity.warning': ['Warnung', 'warning'],
  'alarm.sensor_silent': ['Sensor meldet sich nicht', 'Sensor silent'],
  'alarm.gateway_silent': ['Gateway meldet sich nicht', 'Gateway silent'],
  'alarm.bay_stuck': ['Stellplatzsensor hängt', 'Bay sensor stuck'],
  'alarm.battery_low': ['Batterie schwach', 'Battery low'],
  'alarm.lot_no_data': ['Keine aktuellen Daten', 'No current data'],
  'alarm.counter_jump': ['Zählersprung', 'Counter jump'],
  'alarm.sign_no_ack': ['Anzeigetafel bestätigt nicht', 'Sign not acknowledging'],
  'alarm.sign_local_mode': ['Anzeigetafel im Ortsbetrieb', 'Sign in local mode'],
  'alarm.forecast_error': ['Prognosefehler hoch', 'Forecast error high'],
  'alarm.service_offline': ['Dienst nicht erreichbar', 'Service offline'],
  'alarm.charger_source_silent': ['Ladepunkt-Datenquelle schweigt', 'Charger data source silent'],
  'console.count': ['Korrigieren', 'Correct'],
  'console.count.label': ['Zählung von {name} korrigieren', 'Correct the count of {name}'],
  'console.count.occupied': ['Belegte Plätze in {name} jetzt', 'Spaces taken in {name} now'],
  'console.count.reason': ['Grund für die Korrektur von {name}', 'Reason for correcting {name}'],
  'console.count.placeholder': ['belegt', 'taken'],
  'console.count.missing': [
    'Bitte die Zahl der belegten Plätze und einen Grund angeben.',
    'Please give the number of spaces taken and a reason.'],
  'console.capacity': ['Kapazität begrenzen', 'Limit capacity'],
  'console.capacity.label': ['{name}: Kapazität begrenzen (vorübergehend)',
    'Limit capacity of {name} for a while'],
  'console.capacity.spaces': ['Plätze in {name} bis zum Ende', 'Spaces in {name} until the end'],
  'console.capacity.until': ['Ende der Begrenzung von {name}', 'End of the limit of {name}'],
  'console.capacity.reason': ['Grund für die Begrenzung von {name}', 'Reason for limiting {name}'],
  'console.capacity.placeholder': ['Plätze', 'spaces'],
  'console.capacity.missing': [
    'Bitte Plätze, Ende und einen Grund angeben.',
    'Please give the spaces, the end and a reason.'],
  'console.signs': ['Anzeigetafeln', 'Signs'],
  'console.sign': ['Tafel', 'Sign'],
  'console.sign.asked': ['Modus (angefordert)', 'Mode (asked)'],
  'console.sign.until': ['Bis', 'Until'],
  'console.sign.shown': ['Zeigt (bestätigt)', 'Shows (acknowledged)'],
  'console.sign.none': ['noch nichts bestätigt', 'nothing acknowledged yet'],
  'console.sign.mode': ['Modus für {name}', 'Mode for {name}'],
  'console.sign.text': ['Text für {name} (eine Zeile je Zeile der Tafel)',
    'Text for {name} (one line per line of the sign)'],
  'console.sign.end': ['Ende für {name} (leer: bis geändert)', 'End for {name} (empty: until changed)'],
  'console.sign.reason': ['Grund für den Modus von {name}', 'Reason for the mode of {name}'],
  'console.sign.apply': ['Übernehmen', 'Apply'],
  'console.sign.apply.label': ['Modus von {name} übernehmen', 'Apply the mode of {name}'],
  'console.sign.missing': ['Bitte einen Grund angeben.', 'Please give a reason.'],
  'mode.auto': ['automatisch', 'automatic'],
  'mode.full': ['besetzt', 'full'],
  'mode.closed': ['geschlossen', 'closed'],
  'mode.blank': ['dunkel', 'blank'],
  'mode.test': ['Testbild', 'test pattern'],
  'mode.text': ['fester Text', 'fixed text'],
  'console.people': ['Personen der Leitstelle', 'People of the console'],
  'console.person.name': ['Name', 'Name'],
  'console.person.role': ['Rolle', 'Role'],
  'console.person.password': ['Erstes Passwort (mind. 12 Zeichen)', 'First password (12 characters or more)'],
  'console.person.add': ['Person hinzufügen', 'Add person'],
  'console.person.added': ['{name} hinzugefügt', '{name} added'],
  'console.person.state': ['Zustand', 'State'],
  'console.person.active': ['aktiv', 'active'],
  'console.person.disabled': ['gesperrt', 'disabled'],
  'console.person.disable': ['Sperren', 'Disable'],
  'console.person.disable.label': ['{name} sperren', 'Disable {name}'],
  'console.person.disabled.done': ['{name} gesperrt; alle Sitzungen beendet', '{name} disabled; every session ended'],
  'console.events': ['Veranstaltungen', 'Events'],
  'console.events.none': ['Keine laufenden oder kommenden Veranstaltungen.',
    'No current or upcoming events.'],
  'console.event.name': ['Veranstaltung', 'Event'],
  'console.event.starts': ['Beginn', 'Start'],
  'console.event.ends': ['Ende', 'End'],
  'console.event.lots': ['Parkplätze während der Veranstaltung', 'Car parks during the event'],
  'console.event.role.none': ['unverändert', 'unchanged'],
  'console.event.role.demand': ['mehr Andrang (Prognose)', 'more demand (forecast)'],
  'console.event.role.closed': ['gesperrt', 'closed'],
  'console.event.role.reserved': ['reserviert', 'reserved'],
  'console.event.add': ['Veranstaltung eintragen', 'Enter the event'],
  'console.event.when': ['Zeitraum', 'When'],
  'console.event.effect': ['Parkplätze', 'Car parks'],
  'console.event.source': ['Herkunft', 'Source'],
  'console.event.source.console': ['Leitstelle', 'console'],
  'console.event.source.config': ['Konfiguration (nur lesbar)', 'configuration (read-only)'],
  'console.event.on': ['läuft', 'on now'],
  'console.event.routed': ['Tafel {sign}, Zeile {line}: Alternative {lot}',
    'sign {sign}, line {line}: alternative {lot}'],
  'console.event.delete': ['Löschen', 'Delete'],
  'console.event.delete.label': ['Veranstaltung {name} löschen', 'Delete the event {name}'],
  'console.event.missing': ['Bitte Name, Beginn und Ende angeben.',
    'Please give a name, a start and an end.'],
  'console.event.added': ['Veranstaltung eingetragen: {name}', 'Event entered: {name}'],
  'console.event.deleted': ['Veranstaltung gelöscht: {name}', 'Event deleted: {name}'],
  'role.planner': ['Planung', 'planner'],
  'role.operator': ['Betrieb', 'operator'],
  'role.admin': ['Administration', 'admin'],
  'actor.user': ['Person', 'person'],
  'actor.key': ['API-Schlüssel', 'API key'],
  'report.title': ['Monatsbericht', 'Monthly report'],
  'report.actions': ['Bericht', 'Report'],
  'report.back': ['Zur Leitstelle', 'Back to the console'],
  'report.csv': ['Als CSV herunterladen', 'Download as CSV'],
  'report.print': ['Drucken oder als PDF speichern', 'Print or save as PDF'],
  'report.loading': ['Bericht wird geladen …', 'Loading the report …'],
  'report.login': ['Bitte zuerst in der Leitstelle anmelden.', 'Please log in to the console first.'],
  'report.failed': ['Der Bericht ist nicht verfügbar: {reason}', 'The report is not available: {reason}'],
  'report.period': ['{start} bis {end}, {hours} Stunden', '{start} to {end}, {hours} hours'],
  'report.partial': ['laufender Monat, Stand {until}', 'month under way, as of {until}'],
  'report.occupancy': ['Belegung', 'Occupancy'],
  'report.lot': ['Parkplatz', 'Car park'],
  'report.capacity': ['Stellplätze', 'Spaces'],
  'report.mean': ['Mittlere Belegung', 'Mean occupancy'],
  'report.peak': ['Höchste Belegung (¼ h)', 'Peak occupancy (¼ h)'],
  'report.cars': ['{cars} Fahrzeuge', '{cars} cars'],
  'report.peak_at': ['Höchste Belegung um', 'Peak at'],
  'report.above': ['Zeit über 85 %', 'Time above 85 %'],
  'report.quality': ['Datenqualität', 'Data quality'],
  'report.coverage': ['Zeit mit Daten', 'Time with data'],
  'report.bays': ['Sensoren', 'Sensors'],
  'report.silent': ['zeitweise stumm', 'silent at times'],
  'report.stuck': ['zeitweise hängend', 'stuck at times'],
  'report.flags': ['Qualität jetzt', 'Quality now'],
  'report.signs': ['Verfügbarkeit der Anzeigetafeln', 'Sign availability'],
  'report.sign': ['Anzeigetafel', 'Sign'],
  'report.available': ['Verfügbar und bestätigt', 'Available and acknowledged'],
  'report.known': ['Zustand bekannt', 'State known'],
  'report.pushes': ['Aktualisierungen', 'Updates'],
  'report.failed_pushes': ['davon fehlgeschlagen', 'of them failed'],
  'report.forecast': ['Prognosefehler', 'Forecast error'],
  'report.horizon': ['Horizont (min)', 'Horizon (min)'],
  'report.mae': ['Mittlerer absoluter Fehler (Plätze)', 'Mean absolute error (spaces)'],
  'report.mae_rate': ['Fehler in % der Kapazität', 'Error in % of capacity'],
  'report.points': ['Werte', 'Values'],
  'report.none': ['Keine Daten im Zeitraum.', 'No data in this period.'],
  'report.alarms': ['Alarme und ihre Quittierung', 'Alarms and their acknowledgement'],
  'report.alarm': ['Alarm', 'Alarm'],
  'report.raised': ['Ausgelöst', 'Raised'],
  'report.acknowledged': ['Quittiert', 'Acknowledged'],
  'report.to_ack': ['Bis zur Quittierung (min): Mittel, Maximum', 'Until acknowledged (min): mean, maximum'],
  'report.minutes': ['{mean}, {max}', '{mean}, {max}'],
  'report.open_at_end': ['Am Monatsende offen', 'Open at the end'],
  'report.notes': [
    'Alle Zeiten in der Zeitzone der Stadt. Mittel und Anteile über die Viertelstunden mit Daten. Alarme nach dem Beginn ihrer Ursache.',
    'All times in the city’s time zone. Means and shares over the quarter hours with data. Alarms by when their cause began.'],
  'console.reports': ['Monatsbericht', 'Monthly report'],
  'console.reports.month': ['Monat', 'Month'],
  'console.reports.open': ['Bericht öffnen', 'Open the report'],
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
  const text = TEXTS[key]?.[lang === 'en' ? 1 : 0] ?? key;
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
