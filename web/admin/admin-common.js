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

/** The login form every admin page shows until it has a key (built here, so the pages share one). */
function loginForm() {
  const form = document.createElement('form');
  form.id = 'login';
  form.hidden = true;
  const label = Object.assign(document.createElement('label'), { htmlFor: 'key', textContent: 'API key' });
  const input = Object.assign(document.createElement('input'), { id: 'key', name: 'key', type: 'password', autocomplete: 'current-password', required: true });
  const submit = Object.assign(document.createElement('button'), { type: 'submit', textContent: 'Log in' });
  const error = Object.assign(document.createElement('p'), { id: 'login-error' });
  error.setAttribute('role', 'alert');
  const hint = Object.assign(document.createElement('p'), { className: 'hint', textContent: 'The key stays in this tab only (sessionStorage) and is sent to this API alone, as Authorization: Bearer.' });
  form.append(label, ' ', input, ' ', submit, error, hint);
  document.querySelector('header').after(form);
  return form;
}

/** Run `start` once a key the API accepts is known: from this tab's storage, or from the login form. */
export function requireKey(start) {
  const form = loginForm();
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
