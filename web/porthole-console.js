// Porthole console page, built on noVNC's RFB class (served from the @novnc/novnc package).
// The page opens the WebSocket itself and hands it to RFB, so it can read the close code and
// reason and tell the person *why* a console closed instead of a bare "code 1006".
import RFB from './novnc/core/rfb.js';

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
  4006: 'This console link is for another kind of console (for example a serial console) than this page opens. Ask for a VNC console URL.',
  4010: 'The console proxy could not reach the VM\'s VNC server. The VM may be shut off, or its hypervisor is unreachable from the proxy.',
  4011: 'The VM\'s VNC server did not answer in time.',
  4012: 'The VM\'s VNC server closed the connection (the VM was stopped, rebooted or migrated).',
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
  4029: 'Too many failed attempts from this address. Wait a minute and try again.',
  4400: 'This kind of console is not available here (switched off by the operator, or not supported).',
};

const params = new URLSearchParams(window.location.search);
const statusEl = document.getElementById('status');
const reasonEl = document.getElementById('reason');
const barEl = document.getElementById('top_bar');
const cadButton = document.getElementById('sendCtrlAltDelButton');

function setStatus(text, state) {
  statusEl.textContent = text;
  barEl.className = state ?? '';
}

function showReason(text, detail) {
  reasonEl.hidden = false;
  reasonEl.textContent = text;
  if (detail) {
    const code = document.createElement('code');
    code.textContent = detail;
    reasonEl.append(document.createElement('br'), code);
  }
}

/** Per-tab (sessionStorage) memory of this console's cookie path, so a reload reconnects the same console. */
const CONSOLE_PATH_KEY = 'porthole.consolePath';

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
async function exchangeToken(token) {
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
  if (response.ok && typeof body.path === 'string') return { path: body.path };
  if (typeof body.wsCloseCode === 'number') return { error: body };
  return undefined;
}

function failed(code, reason) {
  setStatus(`Disconnected: ${reason ? reason.replace(/^PH_ERR_[A-Z_]+: /, '') : `code ${code}`}`, 'failed');
  showReason(CLOSE_REASONS[code] ?? `The console closed unexpectedly (code ${code}).`, reason ? `${code} ${reason}` : `code ${code}`);
}

async function start() {
  const target = consoleTarget(window.location, params);
  // From here the token lives only in this closure: not in the address bar, the history, or a Referer.
  const token = target.token;
  if (!token) {
    // A reload after the swap: this tab's console path (its cookie is sent only there).
    connect(window.location, window.sessionStorage.getItem(CONSOLE_PATH_KEY) ?? target.wsPath);
    return;
  }
  window.history.replaceState(null, '', target.pageUrl);
  setStatus('Checking the console link…');
  const swapped = await exchangeToken(token);
  if (swapped?.error) {
    failed(swapped.error.wsCloseCode, `${swapped.error.code}: ${swapped.error.message}`);
  } else if (swapped) {
    window.sessionStorage.setItem(CONSOLE_PATH_KEY, swapped.path);
    // The token is kept for one case: a browser that does not send the cookie (third-party cookies
    // blocked in a dashboard's cross-site iframe) gets 4001, and then the token goes in the URL.
    connect(window.location, swapped.path, undefined, token);
  } else {
    connect(window.location, target.wsPath, token); // no exchange endpoint (an old proxy in between)
  }
}

function connect(loc, path, token, fallbackToken) {
  const url = websocketUrl(loc, path, token);
  setStatus('Connecting…');
  let socket;
  try {
    socket = new WebSocket(url, ['binary']);
  } catch (e) {
    setStatus('Failed to connect', 'failed');
    showReason(`The console address is not valid: ${e.message}`);
    return;
  }
  let closeEvent;
  socket.addEventListener('close', (e) => { closeEvent = e; });

  const options = { shared: true };
  if (params.has('password')) options.credentials = { password: params.get('password') };
  const rfb = new RFB(document.getElementById('screen'), socket, options);
  rfb.viewOnly = params.get('view_only') === 'true';
  rfb.scaleViewport = params.get('scale') === 'true' || params.get('resize') === 'scale';
  let desktopName = '';

  rfb.addEventListener('desktopname', (e) => { desktopName = e.detail.name; });
  rfb.addEventListener('connect', () => {
    setStatus(`Connected (${url.startsWith('wss:') ? 'encrypted' : 'unencrypted'}) to ${desktopName || 'the console'}`, 'connected');
    cadButton.hidden = false;
  });
  rfb.addEventListener('credentialsrequired', () => {
    const password = window.prompt('Password required:');
    rfb.sendCredentials({ password: password ?? '' });
  });
  rfb.addEventListener('securityfailure', (e) => {
    showReason(`The VNC server refused authentication: ${e.detail.reason || `status ${e.detail.status}`}`);
  });
  rfb.addEventListener('disconnect', (e) => {
    cadButton.hidden = true;
    const code = closeEvent?.code ?? 1006;
    const reason = closeEvent?.reason ?? '';
    if (code === 4001 && fallbackToken) {
      console.warn('Porthole: the console cookie was not sent (blocked third-party cookies?); using the token in the WebSocket URL');
      connect(loc, path, fallbackToken);
      return;
    }
    if (e.detail.clean && code === 1000) {
      setStatus('Disconnected');
      return;
    }
    failed(code, reason);
  });
  cadButton.onclick = () => rfb.sendCtrlAltDel();
  const fullscreen = document.getElementById('fullscreenButton');
  if (fullscreen) fullscreen.onclick = () => document.documentElement.requestFullscreen();
  const scale = document.getElementById('scaleToggle');
  if (scale) scale.onchange = (e) => { rfb.scaleViewport = e.target.checked; };
}

void start();
