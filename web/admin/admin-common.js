// What the /admin pages share: the API key (asked once per tab, kept in sessionStorage) and
// small formatters. No third-party code: the pages are served by the API listener itself.
const KEY = 'porthole-api-key';

export async function api(method, path) {
  const res = await fetch(path, { method, headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY) ?? ''}` }, cache: 'no-store' });
  if (res.status === 401) {
    sessionStorage.removeItem(KEY);
    location.reload();
  }
  return res;
}

/** Run `start` once a key the API accepts is known: from this tab's storage, or from the login form. */
export function requireKey(start) {
  const form = document.getElementById('login');
  const logout = document.getElementById('logout');
  logout.addEventListener('click', () => { sessionStorage.removeItem(KEY); location.reload(); });
  const go = () => { form.hidden = true; logout.hidden = false; void start(); };
  if (sessionStorage.getItem(KEY)) {
    go();
    return;
  }
  form.hidden = false;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = document.getElementById('key').value.trim();
    const res = await fetch('/v1/sessions', { headers: { Authorization: `Bearer ${key}` }, cache: 'no-store' });
    if (res.status !== 200) {
      document.getElementById('login-error').textContent = res.status === 401 ? 'The API does not know this key.' : `The API answered HTTP ${res.status}.`;
      return;
    }
    sessionStorage.setItem(KEY, key);
    go();
  });
}

export function whoText(who) {
  if (!who) return '';
  return [who.user, who.project && `project ${who.project}`, who.key && `key ${who.key}`].filter(Boolean).join(', ');
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
