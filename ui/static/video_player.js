// The H.264 player of a video viewer card (ui/video_player.py): packets from the panel's websocket
// (ui/video_feed.py: 4-byte header length, JSON header, Annex B bytes), decoded with WebCodecs'
// VideoDecoder and drawn on a canvas as each comes out: no buffer, latency over smoothness.
// It tells the server what the card shows, so its label is true: "mode" {mode: "h264"} once a frame
// is drawn, {mode: "jpeg", why} while it cannot (no VideoDecoder, codec refused, decoder error, no
// packets, stalled); and "stats" once a second while it plays. The canvas carries data-frames (frames
// drawn) and data-ts (capture time of the one shown) for tests and bench/video_latency.py.
const STALL_MS = 3000; // no frame drawn for this long: back to the JPEG pictures
const SILENT_MS = 4000; // no packet at all for this long: the viewer sends no H.264
const MAX_QUEUE = 6; // frames waiting in the decoder beyond which deltas are dropped up to the next keyframe
const MAX_ERRORS = 3; // decoder errors after which the card stays on JPEG

export default {
  template: `<div class="edge-video"><canvas ref="canvas" :data-video="task" data-frames="0"
    style="display: none; width: 100%; height: auto; background: #000"></canvas></div>`,
  props: { url: String, task: String },
  mounted() {
    this.frames = 0;
    this.shown = 0; // frames drawn since the last stats
    this.bytes = 0;
    this.dropped = 0;
    this.errors = 0;
    this.started = performance.now();
    this.lastDrawn = 0;
    this.lastPacket = 0;
    this.lastTs = null;
    this.mode = null;
    this.why = null;
    this.stopped = false;
    this.retries = 0;
    this.decoder = null;
    this.codec = null;
    this.waitKey = true;
    if (typeof window.VideoDecoder === "undefined" || typeof window.EncodedVideoChunk === "undefined") {
      this.report("jpeg", window.isSecureContext ? "this browser has no WebCodecs VideoDecoder"
        : "WebCodecs needs a secure page (https, or the panel on localhost)");
      return;
    }
    this.report("jpeg", "waiting for an H.264 keyframe");
    this.connect();
    this.timer = setInterval(() => this.tick(), 1000);
  },
  unmounted() {
    this.stop();
  },
  methods: {
    report(mode, why) {
      if (this.mode === mode && this.why === why) return;
      this.mode = mode;
      this.why = why;
      const canvas = this.$refs.canvas;
      if (canvas) canvas.style.display = mode === "h264" ? "block" : "none";
      this.$emit("mode", { mode: mode, why: why });
    },
    stop() {
      this.stopped = true;
      clearInterval(this.timer);
      if (this.ws) this.ws.close();
      this.ws = null;
      this.closeDecoder();
    },
    giveUp(why) {
      this.stop();
      this.report("jpeg", why);
    },
    connect() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(scheme + "//" + location.host + this.url);
      ws.binaryType = "arraybuffer";
      ws.onopen = () => { this.retries = 0; };
      ws.onmessage = (event) => this.receive(event.data);
      ws.onclose = (event) => {
        if (this.stopped || this.ws !== ws) return;
        this.ws = null;
        if (event.code === 4404 || event.code === 4415) {
          this.giveUp(event.reason || "the panel has no H.264 for this card");
          return;
        }
        this.waitKey = true;
        const delay = Math.min(8000, 500 * 2 ** Math.min(this.retries++, 4));
        setTimeout(() => { if (!this.stopped) this.connect(); }, delay);
      };
      this.ws = ws;
      this.waitKey = true;
    },
    receive(data) {
      if (typeof data === "string") {
        let why = "the panel cannot send this stream";
        try { why = String(JSON.parse(data).error || why).slice(0, 200); } catch (e) { /* the default says it */ }
        this.giveUp(why);
        return;
      }
      if (data.byteLength < 4) return;
      const length = new DataView(data).getUint32(0);
      if (4 + length > data.byteLength) return;
      let head;
      try { head = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 4, length))); } catch (e) { return; }
      this.lastPacket = performance.now();
      this.bytes += data.byteLength;
      if (head.key && (head.codec !== this.codec || !this.decoder || this.decoder.state !== "configured")) {
        if (!this.configure(head.codec)) return;
      }
      if (!this.decoder || (this.waitKey && !head.key)) return; // joined mid-stream: from the next keyframe
      if (!head.key && this.decoder.decodeQueueSize > MAX_QUEUE) { // behind: skip to the next keyframe
        this.dropped++;
        this.waitKey = true;
        return;
      }
      this.waitKey = false;
      try {
        this.decoder.decode(new EncodedVideoChunk({
          type: head.key ? "key" : "delta", timestamp: Number(head.ts) * 1000,
          data: new Uint8Array(data, 4 + length),
        }));
      } catch (e) {
        this.failed(e);
      }
    },
    configure(codec) {
      this.closeDecoder();
      if (typeof codec !== "string") return false;
      const decoder = new VideoDecoder({ output: (frame) => this.draw(frame), error: (e) => this.failed(e) });
      try {
        decoder.configure({ codec: codec, optimizeForLatency: true });
      } catch (e) {
        this.giveUp("this browser cannot decode " + codec + ": " + (e.message || e));
        return false;
      }
      this.decoder = decoder;
      this.codec = codec;
      return true;
    },
    closeDecoder() {
      if (this.decoder && this.decoder.state !== "closed") {
        try { this.decoder.close(); } catch (e) { /* closed meanwhile */ }
      }
      this.decoder = null;
      this.codec = null;
    },
    failed(error) {
      this.errors++;
      this.closeDecoder();
      this.waitKey = true;
      if (this.errors >= MAX_ERRORS || this.frames === 0) {
        this.giveUp("the browser's H.264 decoder failed: " + String(error && error.message || error).slice(0, 160));
      }
    },
    draw(frame) {
      const canvas = this.$refs.canvas;
      if (!canvas || this.stopped) {
        frame.close();
        return;
      }
      if (canvas.width !== frame.displayWidth || canvas.height !== frame.displayHeight) {
        canvas.width = frame.displayWidth;
        canvas.height = frame.displayHeight;
      }
      if (!this.context) this.context = canvas.getContext("2d", { willReadFrequently: false });
      this.context.drawImage(frame, 0, 0);
      this.lastTs = frame.timestamp / 1000;
      frame.close();
      this.frames++;
      this.shown++;
      this.lastDrawn = performance.now();
      canvas.dataset.frames = String(this.frames);
      canvas.dataset.ts = String(this.lastTs);
      if (this.mode !== "h264") this.report("h264", "");
    },
    tick() {
      if (this.stopped) return;
      const now = performance.now();
      if (this.mode === "h264") {
        if (now - this.lastDrawn > STALL_MS) {
          this.report("jpeg", "H.264 stalled: no frame for " + Math.round((now - this.lastDrawn) / 1000) + " s");
        } else {
          const canvas = this.$refs.canvas;
          this.$emit("stats", {
            fps: this.shown, frames: this.frames, width: canvas.width, height: canvas.height,
            age: this.lastTs === null ? null : Math.max(0, Date.now() - this.lastTs),
            kbps: Math.round(this.bytes * 8 / 1000), dropped: this.dropped,
          });
        }
      } else if (this.lastPacket === 0 && now - this.started > SILENT_MS) {
        this.report("jpeg", "no H.264 from the viewer (h264 off, or an older agent)");
      }
      this.shown = 0;
      this.bytes = 0;
    },
  },
};
