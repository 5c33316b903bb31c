// AudioWorklet: microphone float32 → 16-bit PCM blocks of ~100 ms, posted to the page.
// The page creates its AudioContext at 16 kHz when the browser allows it; otherwise the server resamples
// (the start message carries the context's real sample rate).
class PcmWorklet extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = Math.round(sampleRate / 10);
    this.buf = new Int16Array(this.block);
    this.n = 0;
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (ch) {
      for (let i = 0; i < ch.length; i++) {
        const s = Math.max(-1, Math.min(1, ch[i]));
        this.buf[this.n++] = s < 0 ? s * 32768 : s * 32767;
        if (this.n === this.block) {
          this.port.postMessage(this.buf.buffer.slice(0));
          this.n = 0;
        }
      }
    }
    return true;
  }
}
registerProcessor("pcm-worklet", PcmWorklet);
