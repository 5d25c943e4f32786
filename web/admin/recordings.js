// The recordings of this node (GET /v1/recordings), newest first, each linking to the player.
import { api, formatBytes, requireKey } from './admin-common.js';

requireKey(async () => {
  document.getElementById('list').hidden = false;
  const res = await api('GET', '/v1/recordings');
  const { recordings } = await res.json();
  document.getElementById('empty').hidden = recordings.length > 0;
  document.getElementById('rows').replaceChildren(...recordings.map((r) => {
    const tr = document.createElement('tr');
    const link = document.createElement('a');
    link.href = `/admin/recordings/${encodeURIComponent(r.name)}`;
    link.textContent = r.name;
    const cells = [link, r.protocol === 'serial' ? 'serial (asciicast)' : 'VNC', formatBytes(r.size), new Date(r.modified).toLocaleString()];
    for (const c of cells) {
      const td = document.createElement('td');
      if (typeof c === 'string') td.textContent = c;
      else td.append(c);
      tr.append(td);
    }
    return tr;
  }));
});
