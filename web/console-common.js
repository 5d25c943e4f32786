// Shared by the console pages (VNC: porthole-console.js, serial: porthole-serial.js): why a
// console closed, the token in the page URL, and the token → cookie swap.

/** What each close code means for the person in front of the browser (docs/errors.md has the operator view). */
export const CLOSE_REASONS = {
  1000: 'The console was closed.',
  1001: 'The console proxy is restarting or shutting down. Reconnect in a moment.',
  1002: 'The browser broke the WebSocket protocol; the console proxy closed the connection.',
  1003: 'The browser sent data the console proxy does not accept.',
  1006: 'Could not reach the console proxy, or the connection dropped without a reason (code 1006). Check the proxy address, TLS settings and any reverse proxy in between.',
  1007: 'The browser sent text that is not valid UTF-8; the console proxy closed the connection.',
  1008: 'The browser sent a message in more pieces than the console proxy accepts.',
  1009: 'The browser sent a message larger than the console proxy accepts.',
  1011: 'The console proxy hit an internal error. The operator can find details in its log.',
  4001: 'This console link has no token. Ask for a new console URL.',
  4002: 'This console link is not valid: the token is unknown. It may be mistyped, or it was issued by a Porthole node that does not share this node\'s token store. Ask for a new console URL.',
  4003: 'This console link has expired. Ask for a new console URL.',
  4004: 'This console link was revoked (the instance\'s consoles were closed). Ask for a new console URL.',
  4005: 'This page\'s origin is not allowed to open consoles on this proxy.',
  4006: 'This console link is for another kind of console (for example a serial console on the VNC page) than this page opens. Ask for a console URL of the right kind.',
  4010: 'The console proxy could not reach the VM\'s console (VNC or serial). The VM may be shut off, or its hypervisor is unreachable from the proxy.',
  4011: 'The VM\'s console (VNC or serial) did not answer in time.',
  4012: 'The VM\'s console (VNC or serial) closed the connection (the VM was stopped, rebooted or migrated).',
  4013: 'The console proxy cannot reach its token store right now. Try again in a moment.',
  4014: 'The connection to the console timed out.',
  4015: 'This console link belongs to a VM that has since stopped or moved. Ask for a new console URL.',
  4016: 'The console proxy cannot ask the hypervisor (libvirt) about this VM right now. Try again in a moment.',
  4017: 'The console proxy could not complete the VNC handshake with the VM.',
  4018: 'The VM\'s VNC server asks for a kind of authentication the console proxy is not set up for.',
  4019: 'The VM\'s VNC server rejected the console proxy\'s password. The operator needs to update it.',
  4020: 'The console proxy could not set up an encrypted connection to the VM\'s VNC server (certificate problem). The operator needs to check it.',
  4021: 'The console proxy has too many open consoles right now. Try again in a moment.',
  4022: 'This VM has too many open consoles. Close another one and try again.',
  4023: 'The console was closed after being idle.',
  4024: 'The console was closed because its link expired. Ask for a new console URL.',
  4025: 'The console proxy is overloaded (out of connections). Try again in a moment; the operator can find details in its log.',
  4027: 'The console proxy could not check with the cloud that this console is still where the link points (its messaging service or the VM\'s host is not answering). Try again in a moment; if it persists, tell the operator.',
  4028: 'The VM\'s host could not confirm where its console is. Ask for a new console URL; if it persists, tell the operator.',
  4030: 'An administrator closed this console.',
  4033: 'This console is view only, and the viewer sent something a view-only console does not pass on (the proxy closed it rather than guess). Reload the page; if it happens again, the operator can find the message type in the proxy\'s log.',
  4034: 'This console must be recorded, and the proxy cannot write the recording (its recordings directory is full or failing). Ask the operator.',
  4035: 'The recording of this console reached its size limit, so the console was closed. Open it again to continue in a new recording.',
  4031: 'The VM\'s SPICE server rejected the console proxy\'s password. The operator needs to update it.',
  4032: 'The VM\'s SPICE server refused a connection of this console (for example a channel it allows only over TLS). The operator can find details in the proxy\'s log.',
  4029: 'Too many failed attempts from this address. Wait a minute and try again.',
  4400: 'This kind of console is not available here (switched off by the operator, or not supported).',
};

/** The status bar and reason box every console page has (#status, #reason, #top_bar). */
export function statusBar(doc) {
  const statusEl = doc.getElementById('status');
  const reasonEl = doc.getElementById('reason');
  const barEl = doc.getElementById('top_bar');
  const setStatus = (text, state) => {
    statusEl.textContent = text;
    barEl.className = state ?? '';
  };
  const showReason = (text, detail) => {
    reasonEl.hidden = false;
    reasonEl.textContent = text;
    if (detail) {
      const code = doc.createElement('code');
      code.textContent = detail;
      reasonEl.append(doc.createElement('br'), code);
    }
  };
  /** A closed console: the short reason in the bar, the sentence for the person below it. */
  const failed = (code, reason) => {
    setStatus(`Disconnected: ${reason ? reason.replace(/^PH_ERR_[A-Z_]+: /, '') : `code ${code}`}`, 'failed');
    showReason(CLOSE_REASONS[code] ?? `The console closed unexpectedly (code ${code}).`, reason ? `${code} ${reason}` : `code ${code}`);
  };
  return { setStatus, showReason, failed };
}

/** Per-tab (sessionStorage) memory of this console's cookie path, so a reload reconnects the same console. */
export const CONSOLE_PATH_KEY = 'porthole.consolePath';
/** What the proxy said of this tab's console at the swap (view only, recorded), for the status bar after a reload. */
export const CONSOLE_GRANTS_KEY = 'porthole.consoleGrants';

/** The status bar's note on a console's grants: " — view only, recorded". Pure. */
export function grantsNote(grants) {
  const notes = [grants?.viewOnly && 'view only', grants?.recorded && 'this session is recorded'].filter(Boolean);
  return notes.length === 0 ? '' : ` — ${notes.join(', ')}`;
}

/**
 * Token and WebSocket path from the page URL: `?token=…`, or noVNC's `?path=websockify%3Ftoken%3D…`.
 * The socket always goes to this page's own host: only the path is taken from `path`.
 * `pageUrl` is the address to show instead: the same page and options without the token.
 */
export function consoleTarget(loc, query) {
  const rawPath = query.get('path') ?? 'websockify';
  const resolved = new URL(rawPath.replace(/^\/+/, '/'), loc.href);
  const token = query.get('token') ?? resolved.searchParams.get('token');
  const kept = new URLSearchParams(query);
  kept.delete('token');
  if (resolved.searchParams.has('token')) kept.delete('path');
  const rest = kept.toString();
  return { token, wsPath: resolved.pathname, pageUrl: `${loc.pathname}${rest ? `?${rest}` : ''}` };
}

export function websocketUrl(loc, path, token) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = new URL(`${scheme}//${loc.host}${path}`);
  if (token) url.searchParams.set('token', token);
  return url.toString();
}

/**
 * Swap the URL token for an HttpOnly cookie scoped to a WebSocket path of this console's own
 * (the proxy's POST /console-session). Returns that path, or an error with the close code that
 * explains it, or undefined when the exchange is unreachable (the caller then keeps the token in
 * memory and puts it in the WebSocket URL, as before).
 */
export async function exchangeToken(token) {
  let response;
  try {
    response = await fetch('console-session', {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      // The page's directory as this browser sees it (a reverse proxy may serve it under a prefix):
      // the cookie's path must be one the browser will send it to.
      body: new URLSearchParams({ token, dir: window.location.pathname.replace(/[^/]*$/, '') }).toString(),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    return undefined;
  }
  const body = await response.json().catch(() => ({}));
  if (response.ok && typeof body.path === 'string') return { path: body.path, grants: { viewOnly: body.viewOnly === true, recorded: body.recorded === true } };
  if (typeof body.wsCloseCode === 'number') return { error: body };
  return undefined;
}

/**
 * The start every console page shares: token out of the address bar, swapped for a cookie, then
 * `connect(path, token, fallbackToken)` as the VNC page always did (see its comments).
 */
export async function startConsole(win, query, ui, connect) {
  const target = consoleTarget(win.location, query);
  // From here the token lives only in this closure: not in the address bar, the history, or a Referer.
  const token = target.token;
  if (!token) {
    // A reload after the swap: this tab's console path (its cookie is sent only there).
    let grants = {};
    try {
      grants = JSON.parse(win.sessionStorage.getItem(CONSOLE_GRANTS_KEY) ?? '{}');
    } catch {
      // not ours: no note
    }
    connect(win.sessionStorage.getItem(CONSOLE_PATH_KEY) ?? target.wsPath, undefined, undefined, grants);
    return;
  }
  win.history.replaceState(null, '', target.pageUrl);
  ui.setStatus('Checking the console link…');
  const swapped = await exchangeToken(token);
  if (swapped?.error) {
    ui.failed(swapped.error.wsCloseCode, `${swapped.error.code}: ${swapped.error.message}`);
  } else if (swapped) {
    win.sessionStorage.setItem(CONSOLE_PATH_KEY, swapped.path);
    win.sessionStorage.setItem(CONSOLE_GRANTS_KEY, JSON.stringify(swapped.grants));
    // The token is kept for one case: a browser that does not send the cookie (third-party cookies
    // blocked in a dashboard's cross-site iframe) gets 4001, and then the token goes in the URL.
    connect(swapped.path, undefined, token, swapped.grants);
  } else {
    connect(target.wsPath, token); // no exchange endpoint (an old proxy in between)
  }
}
