// Plays one recording. VNC recordings (websockify's VNC_frame_data, as Porthole writes them) are
// fed to noVNC's own RFB class through a stand-in channel in recorded time, as noVNC's playback
// harness does: the frames from the server drive a real RFB client, the viewer's frames are
// skipped. Serial recordings (asciicast v2) play in asciinema-player. The file is fetched with the
// API key and parsed here, never evaluated as a script (the page's CSP allows no eval).
import RFB from '/admin/novnc/core/rfb.js';
import { api, requireKey } from './admin-common.js';

const params = new URLSearchParams(location.search);
// /admin/recordings/<name>, or /admin/play.html?name=<name>
const fromPath = /^\/admin\/recordings\/([^/]+)$/.exec(location.pathname);
const name = params.get('name') ?? (fromPath ? decodeURIComponent(fromPath[1]) : '');
const status = document.getElementById('status');
const speedSelect = document.getElementById('speed');
if (params.has('speed')) speedSelect.value = params.get('speed');

/** The frames of a VNC_frame_data file: `'{ms{data'` (server) and `'}ms}data'` (viewer), data a JS string of bytes. */
function parseFrames(text) {
  const frames = [];
  for (const m of text.matchAll(/^'([{}])(\d+)\1((?:[^'\\]|\\.)*)',?$/gm)) {
    const body = m[3].replace(/\\(x[0-9a-f]{2}|.)/g, (_, e) => {
      if (e[0] === 'x' && e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
      return { n: '\n', r: '\r', t: '\t' }[e] ?? e;
    });
    const bytes = new Uint8Array(body.length);
    for (let i = 0; i < body.length; i++) bytes[i] = body.charCodeAt(i);
    frames.push({ fromClient: m[1] === '}', ms: Number(m[2]), bytes });
  }
  return frames;
}

/** A stand-in for the WebSocket RFB reads: it has what noVNC's Websock checks for, and never sends anywhere. */
function recordingChannel() {
  return {
    binaryType: 'arraybuffer', protocol: '', readyState: 'open',
    onopen: null, onmessage: null, onclose: null, onerror: null,
    send() {}, close() { this.readyState = 'closed'; },
  };
}

function playVnc(text) {
  const frames = parseFrames(text).filter((f) => !f.fromClient);
  const channel = recordingChannel();
  const rfb = new RFB(document.getElementById('screen'), channel, { shared: true });
  rfb.viewOnly = true;
  rfb.scaleViewport = true;
  rfb.addEventListener('credentialsrequired', () => rfb.sendCredentials({ password: '' }));
  window.portholePlayback = { frames: frames.length, played: 0, done: false };
  const speed = Number(speedSelect.value);
  let i = 0;
  const started = performance.now();
  const step = () => {
    const now = performance.now() - started;
    while (i < frames.length && (speed === 0 || frames[i].ms / speed <= now)) {
      channel.onmessage?.({ data: frames[i].bytes.buffer });
      i++;
    }
    window.portholePlayback.played = i;
    status.textContent = `frame ${i} of ${frames.length}`;
    if (i < frames.length) setTimeout(step, speed === 0 ? 0 : Math.max(0, frames[i].ms / speed - (performance.now() - started)));
    else {
      window.portholePlayback.done = true;
      status.textContent = `played ${frames.length} frames`;
    }
  };
  step();
}

function playCast(text) {
  const speed = Number(speedSelect.value);
  window.portholePlayer = window.AsciinemaPlayer.create({ data: text }, document.getElementById('screen'), {
    autoPlay: true, speed: speed === 0 ? 100 : speed, fit: 'width', idleTimeLimit: 2,
  });
  window.portholePlayback = { done: false };
  window.portholePlayer.addEventListener('ended', () => { window.portholePlayback.done = true; status.textContent = 'played'; });
  status.textContent = 'playing';
}

requireKey(async () => {
  document.getElementById('title').textContent = name;
  const res = await api('GET', `/v1/recordings/${encodeURIComponent(name)}`);
  if (res.status !== 200) {
    status.textContent = `cannot load the recording: HTTP ${res.status}`;
    return;
  }
  const text = await res.text();
  if (name.endsWith('.cast')) playCast(text);
  else playVnc(text);
});
