// Shared browser client: microphone → simulsub server → caption callbacks (see docs/protocol.md).
export class SimulsubClient {
  constructor({ url, token, policy, onCaption, onStatus, onSummary }) {
    this.url = url;
    this.token = token === undefined ? pageToken() : token;
    this.policy = policy;
    this.onCaption = onCaption || (() => {});
    this.onStatus = onStatus || (() => {});
    this.onSummary = onSummary || (() => {});
  }

  async start() {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
    });
    let ctx;
    try {
      ctx = new AudioContext({ sampleRate: 16000 });
    } catch (e) {
      ctx = new AudioContext(); // the server resamples
    }
    await ctx.audioWorklet.addModule(new URL("pcm-worklet.js", import.meta.url));
    const source = ctx.createMediaStreamSource(stream);
    const node = new AudioWorkletNode(ctx, "pcm-worklet");
    // Browsers cannot set headers on a WebSocket: the token travels as a subprotocol (never in the URL,
    // which ends up in logs); the server answers with the plain "simulsub" subprotocol.
    const protocols = this.token ? ["simulsub", "simulsub.token." + base64url(this.token)] : [];
    const ws = new WebSocket(this.url, protocols);
    ws.binaryType = "arraybuffer";
    this.ws = ws; this.ctx = ctx; this.stream = stream;
    ws.onopen = () => {
      const start = { type: "start", sample_rate: ctx.sampleRate };
      if (this.policy) start.policy = this.policy;
      ws.send(JSON.stringify(start));
      node.port.onmessage = (e) => { if (ws.readyState === WebSocket.OPEN) ws.send(e.data); };
      source.connect(node);
      this.onStatus("listening");
    };
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.type === "partial" || msg.type === "final") this.onCaption(msg);
      else if (msg.type === "summary") this.onSummary(msg);
      else if (msg.type === "error") this.onStatus(`error: ${msg.code}: ${msg.message}`);
    };
    ws.onclose = () => this.onStatus("disconnected");
    ws.onerror = () => this.onStatus("connection error");
  }

  stop() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "stop" }));
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    if (this.ctx) this.ctx.close();
  }
}

// ws:// or wss:// URL of the server that served this page (no token in it: see pageToken).
export function serverUrl() {
  const page = new URL(window.location.href);
  const url = new URL("/", page);
  url.protocol = page.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

// The server token from the page URL's fragment (#token=T), which browsers never send to any server; a
// ?token=T query would travel in the page request and end up in logs, so it is not read.
export function pageToken() {
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  return fragment.get("token") || null;
}

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = "";
  bytes.forEach((b) => { binary += String.fromCharCode(b); });
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// Render one caption message into an element: stable words, then the revisable tail.
export function renderCaption(el, msg) {
  const words = msg.target.split(/\s+/).filter(Boolean);
  const stable = document.createElement("span");
  stable.className = "stable";
  stable.textContent = words.slice(0, msg.stable).join(" ");
  const tail = document.createElement("span");
  tail.className = "tail";
  tail.textContent = (msg.stable ? " " : "") + words.slice(msg.stable).join(" ");
  el.replaceChildren(stable, tail);
  el.classList.toggle("final", msg.type === "final");
}
