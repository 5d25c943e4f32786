// Porthole console page, built on noVNC's RFB class (served from the @novnc/novnc package).
// The page opens the WebSocket itself and hands it to RFB, so it can read the close code and
// reason and tell the person *why* a console closed instead of a bare "code 1006".
import RFB from './novnc/core/rfb.js';
import { grantsNote, startConsole, statusBar, websocketUrl } from './console-common.js';

const params = new URLSearchParams(window.location.search);
const { setStatus, showReason, failed } = statusBar(document);
const cadButton = document.getElementById('sendCtrlAltDelButton');

function connect(path, token, fallbackToken, grants = {}) {
  const loc = window.location;
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
  // A view-only token is enforced by the proxy (input never reaches the VM); the page says so and stops sending it.
  rfb.viewOnly = grants.viewOnly === true || params.get('view_only') === 'true';
  rfb.scaleViewport = params.get('scale') === 'true' || params.get('resize') === 'scale';
  let desktopName = '';

  rfb.addEventListener('desktopname', (e) => { desktopName = e.detail.name; });
  rfb.addEventListener('connect', () => {
    setStatus(`Connected (${url.startsWith('wss:') ? 'encrypted' : 'unencrypted'}) to ${desktopName || 'the console'}${grantsNote(grants)}`, 'connected');
    cadButton.hidden = grants.viewOnly === true;
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
      connect(path, fallbackToken, undefined, grants);
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

void startConsole(window, params, { setStatus, failed }, connect);
