// The operator console: log in, the open alarms (v1/console/alarms, read again every few
// seconds) with an acknowledgement per alarm, the city's lots live (v1/lots, then the SSE
// stream) with a close/open action per lot and a count correction per counter lot, the signs
// (the mode asked beside what each sign acknowledged, polled) with a mode to set, and the
// events (the console's and the config's; planners enter and delete the console's), the
// audit. The session is an HttpOnly cookie the page never
// sees; its CSRF token (from login or v1/console/me) goes with every write.

import { element, tableHead } from './dom.js';
import { config, t, translate, langButton, onLangChange, formatNumber, formatTime } from './i18n.js';
import { LotFeed, hasCount } from './live.js';
import { problemText } from './problem.js';

const $ = (id) => document.getElementById(id);
let session = null;
let feed = null;
const ALARM_POLL_MS = 5000;
let alarmTimer = null;
let alarmSignature = '';
let signTimer = null;
const MODES = ['auto', 'full', 'closed', 'blank', 'test', 'text'];
const SIGNS_REFRESH_MS = 3000;

async function call(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session) headers['X-CSRF-Token'] = session.csrf_token;
  const response = await fetch(`v1/console/${path}`, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && path !== 'login' && path !== 'me') showLogin();
  return response;
}

// Whether the console refused a write: its problem is shown in the element ``errorId`` (on a
// 401 the login is shown instead).
async function refused(response, errorId) {
  if (response.ok) return false;
  if (response.status !== 401) $(errorId).textContent = await problemText(response);
  return true;
}

function showLogin() {
  session = null;
  $('login').hidden = false;
  for (const id of ['alarms', 'lots', 'signs', 'events', 'audit', 'people', 'who', 'logout']) {
    $(id).hidden = true;
  }
  clearInterval(alarmTimer);
  alarmTimer = null;
  clearInterval(signTimer);
  signTimer = null;
  $('username').focus();
}

function showConsole() {
  $('login').hidden = true;
  for (const id of ['alarms', 'lots', 'signs', 'events', 'audit', 'who', 'logout']) {
    $(id).hidden = false;
  }
  $('people').hidden = session.role !== 'admin';
  $('who').textContent = t('console.who', { user: session.user, role: t(`role.${session.role}`) });
  const mayAct = session.role !== 'planner';
  document.body.classList.toggle('read-only', !mayAct);
  if (!feed) {
    feed = new LotFeed();
    feed.addEventListener('reset', (event) => renderLots(event.detail));
    feed.addEventListener('lot', (event) => updateLot(event.detail.lot, event.detail.previous));
    feed.addEventListener('state', (event) => {
      $('connection').dataset.state = event.detail;
      $('connection').textContent = t(`conn.${event.detail}`);
    });
    feed.start().catch(() => { $('connection').textContent = t('conn.failed'); });
  } else {
    renderLots([...feed.lots.values()]);
  }
  alarmSignature = '';
  $('alarm-rows').replaceChildren();
  loadAlarms();
  if (!alarmTimer) alarmTimer = setInterval(loadAlarms, ALARM_POLL_MS);
  loadAudit();
  loadEvents();
  if (session.role === 'admin') loadPeople();
  loadSigns(true);
  if (!signTimer) signTimer = setInterval(() => loadSigns(false), SIGNS_REFRESH_MS);
}

// -- alarms -------------------------------------------------------------------------------------

function cell(text) {
  return element('td', { textContent: text });
}

// The cell that names its row (a lot, a sign, an event) for screen readers.
function rowHeader(text) {
  return element('th', { scope: 'row', textContent: text });
}

function targetName(target) {
  const lot = feed && feed.lots.get(target);
  return lot ? `${lot.name} (${target})` : target;
}

function rowSignature(alarm) {
  return `${alarm.id}/${alarm.acknowledged_at ?? ''}`;
}

async function loadAlarms() {
  const response = await call('alarms');
  if (!response.ok) return;
  const { alarms } = await response.json();
  $('alarms-none').hidden = alarms.length > 0;
  $('alarm-table').hidden = alarms.length === 0;
  const signature = alarms.map(rowSignature).join(',');
  if (signature === alarmSignature) return;
  alarmSignature = signature;
  // Rows that did not change are kept (a comment being typed stays).
  const kept = new Map([...$('alarm-rows').rows].map((row) => [row.dataset.signature, row]));
  $('alarm-rows').replaceChildren(...alarms.map((alarm) => kept.get(rowSignature(alarm))
    || alarmRow(alarm)));
}

function alarmRow(alarm) {
  const row = document.createElement('tr');
  row.dataset.alarm = alarm.id;
  row.dataset.signature = rowSignature(alarm);
  const severity = document.createElement('td');
  const badge = document.createElement('span');
  badge.className = `badge severity-${alarm.severity}`;
  badge.textContent = t(`severity.${alarm.severity}`);
  severity.append(badge);
  const kind = t(`alarm.${alarm.kind}`);
  const target = targetName(alarm.target);
  const acknowledgement = document.createElement('td');
  acknowledgement.className = 'ack';
  if (alarm.acknowledged_by) {
    acknowledgement.textContent = t('console.alarm.acked', { user: alarm.acknowledged_by,
      time: formatTime(alarm.acknowledged_at, true), comment: alarm.ack_comment });
  } else if (session && session.role !== 'planner') {
    acknowledgement.append(ackForm(alarm, kind, target));
  } else {
    acknowledgement.textContent = '–';
  }
  row.append(severity, cell(kind), cell(target), cell(formatTime(alarm.since, true)),
    acknowledgement);
  return row;
}

function ackForm(alarm, kind, target) {
  const form = element('form', { className: 'alarm-action' });
  const input = element('input', { name: 'comment', maxLength: 500,
    placeholder: t('console.alarm.comment') });
  labelled(form, `comment-${alarm.id}`, t('console.alarm.comment.label', { kind, target }), input);
  form.append(actionButton('submit', t('console.alarm.ackButton'),
    t('console.alarm.ackButton.label', { kind, target })));
  onSubmit(form, 'alarm-error', () => acknowledge(alarm, input));
  return form;
}

async function acknowledge(alarm, input) {
  $('alarm-error').textContent = '';
  const comment = input.value.trim();
  if (!comment) {
    $('alarm-error').textContent = t('console.alarm.comment.missing');
    input.focus();
    return;
  }
  const response = await call(`alarms/${alarm.id}/ack`, { method: 'POST', body: { comment } });
  if (await refused(response, 'alarm-error')) return;
  $('alarms-h').focus();
  await loadAlarms();
  loadAudit();
}

function freeText(lot) {
  return hasCount(lot) ? t('console.free.of', { free: formatNumber(lot.free),
    capacity: formatNumber(lot.capacity) }) : '–';
}

function renderLots(lots) {
  const rows = lots.map((lot) => {
    const row = document.createElement('tr');
    row.dataset.lot = lot.id;
    const name = rowHeader(lot.name);
    const status = document.createElement('td');
    status.append(element('span', { className: 'badge' }));
    const free = element('td', { className: 'free' });
    const action = document.createElement('td');
    if (session && session.role !== 'planner') {
      action.append(actionForm(lot));
      if (lot.counting === 'counter') action.append(countForm(lot), capacityForm(lot));
    }
    row.append(name, status, free, action);
    fillRow(row, lot);
    return row;
  });
  $('lot-rows').replaceChildren(...rows);
  eventLotChoices(lots);
}

function actionForm(lot) {
  const form = element('form', { className: 'lot-action' });
  // The label's and the button's texts follow the lot's status (fillRow).
  labelled(form, `reason-${lot.id}`, '', element('input', { name: 'reason', maxLength: 500 }));
  form.append(element('button', { type: 'submit' }));
  onSubmit(form, 'action-error', () => act(lot.id, form));
  return form;
}

// ``field`` in ``form`` with the id ``id``, after its label (for screen readers only).
function labelled(form, id, text, field) {
  const label = element('label', { htmlFor: id, className: 'visually-hidden', textContent: text });
  field.id = id;
  form.append(label, field);
}

// A button with its text and the label that tells a screen reader what it acts on.
function actionButton(type, text, label) {
  const button = element('button', { type, textContent: text });
  button.setAttribute('aria-label', label);
  return button;
}

// The reason for an operator's action (the audit keeps it), labelled in ``form``.
function reasonField(form, id, text) {
  const reason = element('input', { name: 'reason', maxLength: 500, placeholder: t('console.reason') });
  labelled(form, id, text, reason);
  return reason;
}

// Submitting ``form`` runs ``action`` in the page; its failure is shown in ``errorId``.
function onSubmit(form, errorId, action) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    action().catch((error) => { $(errorId).textContent = String(error); });
  });
}

function countForm(lot) {
  const form = element('form', { className: 'count-action' });
  const occupied = element('input', { type: 'number', name: 'occupied', min: '0',
    placeholder: t('console.count.placeholder') });
  labelled(form, `count-${lot.id}`, t('console.count.occupied', { name: lot.name }), occupied);
  const reason = reasonField(form, `count-reason-${lot.id}`,
    t('console.count.reason', { name: lot.name }));
  form.append(actionButton('submit', t('console.count'),
    t('console.count.label', { name: lot.name })));
  onSubmit(form, 'action-error', () => correctCount(lot.id, occupied, reason));
  return form;
}

function capacityForm(lot) {
  const form = element('form', { className: 'count-action capacity-action' });
  const capacity = element('input', { type: 'number', name: 'capacity', min: '0',
    placeholder: t('console.capacity.placeholder') });
  labelled(form, `capacity-${lot.id}`, t('console.capacity.spaces', { name: lot.name }), capacity);
  labelled(form, `capacity-until-${lot.id}`, t('console.capacity.until', { name: lot.name }),
    element('input', { type: 'datetime-local', name: 'until' }));
  reasonField(form, `capacity-reason-${lot.id}`, t('console.capacity.reason', { name: lot.name }));
  form.append(actionButton('submit', t('console.capacity'),
    t('console.capacity.label', { name: lot.name })));
  onSubmit(form, 'action-error', () => limitCapacity(lot.id, form));
  return form;
}

async function limitCapacity(lotId, form) {
  $('action-error').textContent = '';
  const { capacity, until, reason } = form.elements;
  if (capacity.value === '' || !until.value || !reason.value.trim()) {
    $('action-error').textContent = t('console.capacity.missing');
    return;
  }
  const response = await call(`lots/${encodeURIComponent(lotId)}/capacity`, { method: 'POST',
    body: { capacity: Number(capacity.value), until: new Date(until.value).toISOString(),
      reason: reason.value.trim() } });
  if (await refused(response, 'action-error')) return;
  const result = await response.json();
  for (const input of [capacity, until, reason]) input.value = '';
  feed.apply({ id: result.lot_id, capacity: result.capacity, free: result.free,
    status: result.status });
  loadAudit();
}

async function correctCount(lotId, occupiedInput, reasonInput) {
  $('action-error').textContent = '';
  const reason = reasonInput.value.trim();
  if (occupiedInput.value === '' || !reason) {
    $('action-error').textContent = t('console.count.missing');
    (occupiedInput.value === '' ? occupiedInput : reasonInput).focus();
    return;
  }
  const response = await call(`lots/${encodeURIComponent(lotId)}/count`,
    { method: 'POST', body: { occupied: Number(occupiedInput.value), reason } });
  if (await refused(response, 'action-error')) return;
  const result = await response.json();
  occupiedInput.value = '';
  reasonInput.value = '';
  feed.apply({ id: result.lot_id, free: result.free, occupied: result.occupied,
    status: result.status, updated: result.updated });
  loadAudit();
}

// -- signs ---------------------------------------------------------------------------------

function linesList(lines, empty) {
  const list = document.createElement('ul');
  list.className = 'sign-lines';
  for (const line of lines ?? []) {
    const item = document.createElement('li');
    item.textContent = `${line.label} ${line.text}`.trim() || '□';
    list.append(item);
  }
  if (!lines) {
    const item = document.createElement('li');
    item.textContent = empty;
    list.append(item);
  }
  return list;
}

function signForm(sign) {
  const form = element('form', { className: 'sign-action' });
  const mode = element('select', { name: 'mode' });
  mode.append(...MODES.map((value) => element('option', { value, textContent: t(`mode.${value}`) })));
  mode.value = sign.mode;
  labelled(form, `mode-${sign.sign_id}`, t('console.sign.mode', { name: sign.name }), mode);
  const text = element('textarea', { name: 'text', rows: 2, maxLength: 1000 });
  labelled(form, `text-${sign.sign_id}`, t('console.sign.text', { name: sign.name }), text);
  labelled(form, `until-${sign.sign_id}`, t('console.sign.end', { name: sign.name }),
    element('input', { type: 'datetime-local', name: 'until' }));
  reasonField(form, `sign-reason-${sign.sign_id}`, t('console.sign.reason', { name: sign.name }));
  for (const label of form.querySelectorAll('label')) label.classList.remove('visually-hidden');
  form.append(actionButton('submit', t('console.sign.apply'),
    t('console.sign.apply.label', { name: sign.name })));
  const showText = () => { text.hidden = mode.value !== 'text'; text.previousSibling.hidden = text.hidden; };
  mode.addEventListener('change', showText);
  showText();
  onSubmit(form, 'sign-error', () => applyMode(sign.sign_id, form));
  return form;
}

function fillSignRow(row, sign) {
  const [asked, until, shown] = row.querySelectorAll('td');
  const word = document.createElement('strong');
  word.className = 'mode';
  word.textContent = t(`mode.${sign.mode}`);
  asked.replaceChildren(word, ...(sign.asked ? [linesList(sign.asked)] : []));
  until.textContent = sign.until ? formatTime(sign.until, true) : '–';
  shown.replaceChildren(linesList(sign.shown, t('console.sign.none')));
  row.dataset.mode = sign.mode;
}

async function loadSigns(rebuild) {
  const response = await call('signs');
  if (!response.ok) return;
  const signs = await response.json();
  const rows = $('sign-rows');
  if (rebuild || rows.rows.length !== signs.length) {
    rows.replaceChildren(...signs.map((sign) => {
      const row = document.createElement('tr');
      row.dataset.sign = sign.sign_id;
      const name = rowHeader(sign.name);
      const action = document.createElement('td');
      if (session && session.role !== 'planner') action.append(signForm(sign));
      row.append(name, document.createElement('td'), document.createElement('td'),
        document.createElement('td'), action);
      return row;
    }));
  }
  for (const sign of signs) {
    const row = [...rows.rows].find((candidate) => candidate.dataset.sign === sign.sign_id);
    if (row) fillSignRow(row, sign);
  }
}

async function applyMode(signId, form) {
  $('sign-error').textContent = '';
  const reason = form.elements.reason.value.trim();
  if (!reason) {
    $('sign-error').textContent = t('console.sign.missing');
    form.elements.reason.focus();
    return;
  }
  const body = { mode: form.elements.mode.value, reason };
  if (body.mode === 'text') body.text = form.elements.text.value;
  if (form.elements.until.value && body.mode !== 'auto') {
    body.until = new Date(form.elements.until.value).toISOString();
  }
  const response = await call(`signs/${encodeURIComponent(signId)}/mode`, { method: 'PUT', body });
  if (await refused(response, 'sign-error')) return;
  const sign = await response.json();
  form.elements.reason.value = '';
  const row = [...$('sign-rows').rows].find((candidate) => candidate.dataset.sign === signId);
  if (row) fillSignRow(row, sign);
  $('announce').textContent = t('console.sign.mode', { name: sign.name }) + ': ' + t(`mode.${sign.mode}`);
  loadAudit();
}

function fillRow(row, lot) {
  const closed = lot.status === 'closed';
  const badge = row.querySelector('.badge');
  badge.className = `badge status-${lot.status || 'unknown'}`;
  badge.textContent = t(`status.${lot.status || 'unknown'}`);
  row.querySelector('.free').textContent = freeText(lot);
  const form = row.querySelector('form.lot-action');
  if (form) {
    form.dataset.closed = closed ? 'true' : 'false';
    form.querySelector('label').textContent = t('console.reason.label', { name: lot.name });
    const input = form.querySelector('input');
    input.placeholder = t('console.reason');
    input.hidden = closed;
    form.querySelector('button').textContent = t(closed ? 'console.open' : 'console.close');
    form.querySelector('button').setAttribute('aria-label',
      t(closed ? 'console.open.label' : 'console.close.label', { name: lot.name }));
  }
}

function updateLot(lot, previous) {
  const row = [...$('lot-rows').rows].find((candidate) => candidate.dataset.lot === lot.id);
  if (!row) return;
  fillRow(row, lot);
  if (previous && previous.status !== lot.status) {
    $('announce').textContent = t('announce.status', { name: lot.name, status: t(`status.${lot.status}`) });
  }
}

async function act(lotId, form) {
  $('action-error').textContent = '';
  const closing = form.dataset.closed !== 'true';
  const input = form.querySelector('input');
  const reason = input.value.trim();
  if (closing && !reason) {
    $('action-error').textContent = t('console.reason.missing');
    input.focus();
    return;
  }
  const response = await call(`lots/${encodeURIComponent(lotId)}/${closing ? 'close' : 'open'}`,
    { method: 'POST', body: closing ? { reason } : undefined });
  if (await refused(response, 'action-error')) return;
  const result = await response.json();
  input.value = '';
  feed.apply({ id: result.lot_id, status: result.status });
  loadAudit();
}

// -- events -------------------------------------------------------------------------------

const EVENT_ROLES = ['none', 'demand', 'closed', 'reserved'];
const EVENT_FIELDS = { demand: 'lots', closed: 'closed_lots', reserved: 'reserved_lots' };

function eventLotChoices(lots) {
  // One choice per lot of this page's city: unchanged, more demand, closed or reserved.
  const own = lots.filter((lot) => !lot.city || lot.city === config.city.id);
  const box = $('event-lots');
  const signature = own.map((lot) => lot.id).join(',');
  if (box.dataset.signature !== signature) {
    box.dataset.signature = signature;
    box.replaceChildren(...own.map((lot) => {
      const row = document.createElement('div');
      row.className = 'event-lot';
      const select = document.createElement('select');
      select.name = 'lot-role';
      select.dataset.lot = lot.id;
      for (const role of EVENT_ROLES) {
        const option = document.createElement('option');
        option.value = role;
        select.append(option);
      }
      labelled(row, `event-lot-${lot.id}`, '', select);
      row.querySelector('label').classList.remove('visually-hidden');
      row.querySelector('label').dataset.name = lot.name;
      return row;
    }));
  }
  // The words again (the language may have changed), the choices kept.
  for (const row of box.children) {
    const label = row.querySelector('label');
    label.textContent = label.dataset.name;
    const select = row.querySelector('select');
    for (const option of select.options) option.textContent = t(`console.event.role.${option.value}`);
  }
}

function lotName(id) {
  const lot = feed && feed.lots.get(id);
  return lot ? lot.name : id;
}

function eventRow(event) {
  const row = document.createElement('tr');
  row.dataset.event = event.id ?? `config:${event.name}`;
  const name = rowHeader(event.name);
  const when = cell(`${formatTime(event.starts, true)} – ${formatTime(event.ends, true)}`
    + (event.on ? ` (${t('console.event.on')})` : ''));
  const effect = document.createElement('td');
  const list = document.createElement('ul');
  list.className = 'event-effect';
  for (const [role, field] of Object.entries(EVENT_FIELDS)) {
    if (!event[field].length) continue;
    const item = document.createElement('li');
    item.textContent = `${t(`console.event.role.${role}`)}: ${event[field].map(lotName).join(', ')}`;
    list.append(item);
  }
  for (const line of event.routed) {
    const item = document.createElement('li');
    item.textContent = t('console.event.routed', { sign: line.sign_name, line: line.line,
      lot: lotName(line.alternative) });
    list.append(item);
  }
  effect.append(list);
  const source = cell(t(`console.event.source.${event.source}`));
  const action = document.createElement('td');
  if (event.source === 'console') {
    const button = actionButton('button', t('console.event.delete'),
      t('console.event.delete.label', { name: event.name }));
    button.addEventListener('click', () => {
      deleteEvent(event).catch((error) => { $('event-error').textContent = String(error); });
    });
    action.append(button);
  }
  row.append(name, when, effect, source, action);
  return row;
}

async function loadEvents() {
  const response = await call(`events?city=${encodeURIComponent(config.city.id)}`);
  if (!response.ok) return;
  const { events } = await response.json();
  $('events-none').hidden = events.length > 0;
  $('event-table').hidden = events.length === 0;
  $('event-rows').replaceChildren(...events.map(eventRow));
}

async function addEvent() {
  $('event-error').textContent = '';
  const form = $('event-form');
  const name = form.elements.name.value.trim();
  const { starts, ends } = form.elements;
  if (!name || !starts.value || !ends.value) {
    $('event-error').textContent = t('console.event.missing');
    (!name ? form.elements.name : !starts.value ? starts : ends).focus();
    return;
  }
  const body = { name, city: config.city.id, starts: new Date(starts.value).toISOString(),
    ends: new Date(ends.value).toISOString(), lots: [], closed_lots: [], reserved_lots: [] };
  const choices = [...form.querySelectorAll('select[name=lot-role]')];
  for (const select of choices) {
    if (EVENT_FIELDS[select.value]) body[EVENT_FIELDS[select.value]].push(select.dataset.lot);
  }
  const response = await call('events', { method: 'POST', body });
  if (await refused(response, 'event-error')) return;
  form.elements.name.value = '';
  starts.value = '';
  ends.value = '';
  for (const select of choices) select.value = 'none';
  $('announce').textContent = t('console.event.added', { name });
  await loadEvents();
  loadAudit();
}

async function deleteEvent(event) {
  $('event-error').textContent = '';
  const response = await call(`events/${event.id}`, { method: 'DELETE' });
  if (await refused(response, 'event-error')) return;
  $('announce').textContent = t('console.event.deleted', { name: event.name });
  $('events-h').focus();
  await loadEvents();
  loadAudit();
}

$('event-form').addEventListener('submit', (event) => {
  event.preventDefault();
  addEvent().catch((error) => { $('event-error').textContent = String(error); });
});

async function loadAudit() {
  const response = await call('audit?limit=50');
  if (!response.ok) return;
  const page = await response.json();
  $('audit-rows').replaceChildren(...page.entries.map((entry) => {
    const row = document.createElement('tr');
    const cells = [formatTime(entry.time, true), `${entry.actor} (${t(`actor.${entry.actor_kind}`)})`,
      entry.action, entry.target ?? '', entry.detail?.reason ?? entry.detail?.comment ?? entry.detail?.name ?? ''];
    row.append(...cells.map((text) => {
      const cell = document.createElement('td');
      cell.textContent = text;
      return cell;
    }));
    return row;
  }));
}

// -- people (admin) -------------------------------------------------------------------------------

async function loadPeople() {
  const response = await call('users');
  if (!response.ok) return;
  const { users } = await response.json();
  $('people-rows').replaceChildren(...users.map((person) => {
    const row = document.createElement('tr');
    row.dataset.person = person.name;
    const action = document.createElement('td');
    if (!person.disabled && person.name !== session.user) {
      const button = actionButton('button', t('console.person.disable'),
        t('console.person.disable.label', { name: person.name }));
      button.addEventListener('click', () => disablePerson(person.name));
      action.append(button);
    }
    row.append(cell(person.name), cell(t(`role.${person.role}`)),
      cell(t(person.disabled ? 'console.person.disabled' : 'console.person.active')), action);
    return row;
  }));
}

async function disablePerson(name) {
  $('people-error').textContent = '';
  const response = await call(`users/${encodeURIComponent(name)}/disable`, { method: 'POST' });
  if (!response.ok && response.status !== 401) {
    $('people-error').textContent = await problemText(response);
    return;
  }
  $('announce').textContent = t('console.person.disabled.done', { name });
  loadPeople();
  loadAudit();
}

$('person-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('people-error').textContent = '';
  const body = { name: $('person-name').value.trim(), role: $('person-role').value,
    password: $('person-password').value };
  const response = await call('users', { method: 'POST', body });
  $('person-password').value = '';
  if (await refused(response, 'people-error')) return;
  $('person-name').value = '';
  $('announce').textContent = t('console.person.added', { name: body.name });
  loadPeople();
  loadAudit();
});

$('login-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('login-error').textContent = '';
  const username = $('username').value.trim();
  const password = $('password').value;
  if (!username || !password) {
    $('login-error').textContent = t('console.login.missing');
    return;
  }
  const response = await call('login', { method: 'POST', body: { username, password } });
  $('password').value = '';
  if (!response.ok) {
    $('login-error').textContent = response.status === 401 ? t('console.login.wrong')
      : await problemText(response);
    $('password').focus();
    return;
  }
  session = await response.json();
  showConsole();
  $('alarms-h').focus(); // the console's work starts with the open alarms, on top
});

$('logout').addEventListener('click', async () => {
  await call('logout', { method: 'POST' });
  showLogin();
});

for (const el of document.querySelectorAll('.city-name')) el.textContent = config.city.name;
for (const table of document.querySelectorAll('table[data-columns]')) {
  tableHead(table, table.dataset.columns.split(' '));
}
$('lots-h').tabIndex = -1;
$('alarms-h').tabIndex = -1;
$('events-h').tabIndex = -1;
langButton($('lang'));
translate();
onLangChange(() => {
  if (session) showConsole();
});

call('me').then(async (response) => {
  if (response.ok) {
    session = await response.json();
    showConsole();
  } else {
    showLogin();
  }
}).catch(showLogin);
