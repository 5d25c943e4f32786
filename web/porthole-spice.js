// Porthole SPICE console page: spice-html5 (Debian's package, served from /spice-html5/) with the
// same token handling as the other pages (the token leaves the address bar and becomes a console
// cookie) and the reasons a console closed. The page never has the VM's SPICE password: the proxy
// links every channel with its own ticket, so spice-html5 sends an empty one that is thrown away.
import { SpiceMainConn, sendCtrlAltDel } from './spice-html5/main.js';
import { startConsole, statusBar, websocketUrl } from './console-common.js';

const params = new URLSearchParams(window.location.search);
const { setStatus, showReason, failed } = statusBar(document);
const cadButton = document.getElementById('sendCtrlAltDelButton');
let connection;

function connect(path, token, fallbackToken) {
  const uri = websocketUrl(window.location, path, token);
  setStatus('Connecting…');
  let closeEvent;
  let reported = false;
  const report = () => {
    if (reported) return;
    reported = true;
    cadButton.hidden = true;
    const code = closeEvent?.code ?? 1006;
    if (code === 4001 && fallbackToken) {
      console.warn('Porthole: the console cookie was not sent (blocked third-party cookies?); using the token in the WebSocket URL');
      connection?.stop?.();
      connect(path, fallbackToken);
      return;
    }
    failed(code, closeEvent?.reason ?? '');
  };
  try {
    connection = new SpiceMainConn({
      uri, screen_id: 'spice-screen', message_id: 'message-div', password: '',
      onerror: () => {
        // spice-html5 reports "Unexpected close"; the main channel's close code says why.
        if (closeEvent !== undefined) report();
        else window.setTimeout(report, 200);
      },
      onsuccess: () => {
        setStatus(`Connected (${uri.startsWith('wss:') ? 'encrypted' : 'unencrypted'}) to the SPICE console`, 'connected');
        cadButton.hidden = false;
      },
    });
  } catch (e) {
    setStatus('Failed to connect', 'failed');
    showReason(`The console could not be opened: ${e.message}`);
    return;
  }
  connection.ws.addEventListener('close', (e) => {
    closeEvent = e;
    if (e.code !== 1000) report();
  });
  cadButton.onclick = () => sendCtrlAltDel(connection);
}

void startConsole(window, params, { setStatus, failed }, connect);
