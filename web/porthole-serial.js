// Porthole serial console page: xterm.js (from the @xterm/xterm and @xterm/addon-fit packages)
// on a WebSocket to the console proxy. The guest's serial port is raw bytes both ways: output is
// written to the terminal as bytes, keystrokes and pastes go out as binary frames (so the page also
// works against nova-serialproxy, which refuses text frames). A serial line has no window size: the
// terminal fits the browser window, the guest learns its size only from `stty rows R cols C`.
import { Terminal } from './xterm/lib/xterm.mjs';
import { FitAddon } from './xterm-addon-fit/lib/addon-fit.mjs';
import { grantsNote, startConsole, statusBar, websocketUrl } from './console-common.js';

const params = new URLSearchParams(window.location.search);
const { setStatus, showReason, failed } = statusBar(document);
const encoder = new window.TextEncoder();

const term = new Terminal({ cursorBlink: true, scrollback: 10000, fontFamily: 'monospace', allowProposedApi: false });
const fit = new FitAddon();
term.loadAddon(fit);
term.open(document.getElementById('terminal'));
fit.fit();
window.addEventListener('resize', () => fit.fit());
// For people and tests: the terminal's buffer (term.buffer.active) is the screen's text.
window.portholeTerminal = term;

let socket;
term.onData((data) => {
  if (socket?.readyState === WebSocket.OPEN) socket.send(encoder.encode(data));
});
// Bytes xterm.js reports as binary (some mouse reports): one byte per character.
term.onBinary((data) => {
  if (socket?.readyState === WebSocket.OPEN) socket.send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff));
});

function connect(path, token, fallbackToken, grants = {}) {
  // View only: the proxy drops what is typed; the terminal takes no input either.
  term.options.disableStdin = grants.viewOnly === true;
  const url = websocketUrl(window.location, path, token);
  setStatus('Connecting…');
  try {
    socket = new WebSocket(url, ['binary']);
  } catch (e) {
    setStatus('Failed to connect', 'failed');
    showReason(`The console address is not valid: ${e.message}`);
    return;
  }
  socket.binaryType = 'arraybuffer';
  socket.addEventListener('open', () => {
    setStatus(`Connected (${url.startsWith('wss:') ? 'encrypted' : 'unencrypted'}) to the serial console${grantsNote(grants)}`, 'connected');
    term.focus();
  });
  socket.addEventListener('message', (e) => {
    term.write(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
  });
  socket.addEventListener('close', (e) => {
    if (e.code === 4001 && fallbackToken) {
      console.warn('Porthole: the console cookie was not sent (blocked third-party cookies?); using the token in the WebSocket URL');
      connect(path, fallbackToken, undefined, grants);
      return;
    }
    if (e.wasClean && e.code === 1000) {
      setStatus('Disconnected');
      return;
    }
    failed(e.code, e.reason);
  });
}

void startConsole(window, params, { setStatus, failed }, connect);
