// The sessions page of /admin: this node's open consoles from GET /v1/sessions, refreshed every
// two seconds, each with a close button (DELETE /v1/sessions/{id} → the console page shows
// "An administrator closed this console."). The API key is asked for once and kept in this tab's
// sessionStorage. Everything shown is set as text, never as HTML: instance names and the user and
// project a dashboard passed at mint are other people's strings.
import { api, formatBytes, requireKey, whoText } from './admin-common.js';

const REFRESH_MS = 2000;
const rows = document.getElementById('rows');

function since(iso) {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function cell(tr, text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  tr.append(td);
  return td;
}

function render(body) {
  document.getElementById('node').textContent = body.node ? `on ${body.node}` : '';
  document.getElementById('empty').hidden = body.sessions.length > 0;
  const trs = body.sessions.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.session = s.id;
    const name = cell(tr, s.instance ?? '?');
    for (const [flag, label] of [[s.viewOnly, 'view only'], [s.recording, 'recorded']]) {
      if (!flag) continue;
      const tag = document.createElement('span');
      tag.className = 'tag';
      tag.textContent = label;
      name.append(tag);
    }
    cell(tr, `${s.protocol ?? '?'}${s.channels > 1 ? ` (${s.channels} channels)` : ''}`);
    cell(tr, whoText(s.who));
    cell(tr, s.remote);
    cell(tr, since(s.started)).title = s.started;
    cell(tr, formatBytes(s.bytesToClient), 'num');
    cell(tr, formatBytes(s.bytesToServer), 'num');
    cell(tr, s.state);
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Close';
    button.addEventListener('click', async () => {
      button.disabled = true;
      const res = await api('DELETE', `/v1/sessions/${encodeURIComponent(s.id)}`);
      if (res.status !== 204 && res.status !== 404) button.disabled = false;
      await refresh();
    });
    tr.append(document.createElement('td'));
    tr.lastElementChild.append(button);
    return tr;
  });
  rows.replaceChildren(...trs);
  document.getElementById('refreshed').textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function refresh() {
  const res = await api('GET', '/v1/sessions');
  if (res.status === 200) render(await res.json());
  else document.getElementById('refreshed').textContent = `update failed: HTTP ${res.status}`;
}

requireKey(async () => {
  document.getElementById('sessions').hidden = false;
  await refresh();
  setInterval(() => { void refresh(); }, REFRESH_MS);
});
