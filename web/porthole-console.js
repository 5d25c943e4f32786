// Porthole console page, built on noVNC's RFB class (served from the @novnc/novnc package).
// The page opens the WebSocket itself and hands it to RFB, so it can read the close code and
// reason and tell the person *why* a console closed instead of a bare "code 1006".
import RFB from './novnc/core/rfb.js';

/** What each close code means for the person in front of the browser (docs/errors.md has the operator view). */
export const CLOSE_REASONS = {
  1000: 'The console was closed.',
  1001: 'The console proxy is restarting or shutting down. Reconnect in a moment.',
  1003: 'The browser sent data the console proxy does not accept.',
  1006: 'Could not reach the console proxy, or the connection dropped without a reason (code 1006). Check the proxy address, TLS settings and any reverse proxy in between.',
  1009: 'The browser sent a message larger than the console proxy accepts.',
  1011: 'The console proxy hit an internal error. The operator can find details in its log.',
  4001: 'This console link has no token. Ask for a new console URL.',
  4002: 'This console link is not valid: the token is unknown. It may be mistyped, or it was issued by a Porthole node that does not share this node\'s token store. Ask for a new console URL.',
  4003: 'This console link has expired. Ask for a new console URL.',
  4004: 'This console link was revoked (the instance\'s consoles were closed). Ask for a new console URL.',
  4005: 'This page\'s origin is not allowed to open consoles on this proxy.',
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
  4029: 'Too many failed attempts from this address. Wait a minute and try again.',
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

/**
 * Token and WebSocket path from the page URL: `?token=…`, or noVNC's `?path=websockify%3Ftoken%3D…`.
 * The socket always goes to this page's own host: only the path is taken from `path`.
 */
export function websocketUrl(loc, query) {
  const rawPath = query.get('path') ?? 'websockify';
  const resolved = new URL(rawPath.replace(/^\/+/, '/'), loc.href);
  const token = query.get('token') ?? resolved.searchParams.get('token');
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = new URL(`${scheme}//${loc.host}${resolved.pathname}`);
  if (token) url.searchParams.set('token', token);
  return url.toString();
}

function start() {
  const url = websocketUrl(window.location, params);
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
    if (e.detail.clean && code === 1000) {
      setStatus('Disconnected');
      return;
    }
    setStatus(`Disconnected: ${reason ? reason.replace(/^PH_ERR_[A-Z_]+: /, '') : `code ${code}`}`, 'failed');
    showReason(CLOSE_REASONS[code] ?? `The console closed unexpectedly (code ${code}).`, reason ? `${code} ${reason}` : `code ${code}`);
  });
  cadButton.addEventListener('click', () => rfb.sendCtrlAltDel());
  document.getElementById('fullscreenButton')?.addEventListener('click', () => document.documentElement.requestFullscreen());
  document.getElementById('scaleToggle')?.addEventListener('change', (e) => { rfb.scaleViewport = e.target.checked; });
}

start();
