// The H.264 player of a video viewer card (ui/video_player.py): packets from the panel's websocket
// (ui/video_feed.py: 4-byte header length, JSON header, Annex B bytes), shown as each comes, with
// no buffer: latency over smoothness. Two ways, the first the browser has:
// * WebCodecs (secure pages: https, localhost): VideoDecoder, each frame drawn on a canvas;
// * Media Source Extensions (any page, so a panel opened over plain http too): each packet wrapped
//   here as a fragment of MP4 (Fmp4 below) into a muted <video>, held at the live edge.
// It tells the server what the card shows, so its label is true: "mode" {mode: "h264", api} once a
// frame is shown, {mode: "jpeg", why} while it cannot (neither API, codec refused, decoder error, no
// packets, stalled); and "stats" once a second while it plays. The canvas or video carries
// data-frames (frames shown) and data-ts (capture time of the one shown) for tests and the bench.
const STALL_MS = 3000; // no frame shown for this long: back to the JPEG pictures
const SILENT_MS = 4000; // no packet at all for this long: the viewer sends no H.264
const MAX_QUEUE = 6; // frames waiting in the decoder beyond which deltas are dropped up to the next keyframe
const MAX_ERRORS = 3; // decoder errors after which the card stays on JPEG
const MSE_BEHIND = 0.25; // s of video buffered ahead of the playhead beyond which it jumps to the live edge
const MSE_KEEP = 10; // s of video kept behind the playhead (older is removed from the buffer)
const MAX_WAITING = 300; // fragments waiting for the Media Source at most

// -- fragmented MP4 for MSE: an init segment (ftyp, moov with the avcC), then moof+mdat per frame --------
const ascii = (text) => Uint8Array.from(text, (c) => c.charCodeAt(0));
const u8 = (n) => Uint8Array.of(n & 255);
const u16 = (n) => Uint8Array.of((n >>> 8) & 255, n & 255);
const u32 = (n) => Uint8Array.of((n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
const u64 = (n) => [u32(Math.floor(n / 4294967296)), u32(n % 4294967296)];
const zeros = (count) => new Uint8Array(count);

function concat(parts) {
  const flat = parts.flat(Infinity);
  const out = new Uint8Array(flat.reduce((size, part) => size + part.length, 0));
  let at = 0;
  for (const part of flat) { out.set(part, at); at += part.length; }
  return out;
}

function box(type, ...parts) {
  const body = concat(parts);
  return concat([u32(body.length + 8), ascii(type), body]);
}

const full = (type, version, flags, ...parts) => box(type, u8(version), u8(flags >> 16), u16(flags & 0xffff), ...parts);
const MATRIX = [0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000].map(u32);

/** The NAL units of Annex B bytes (start codes 00 00 01 or 00 00 00 01 removed). */
function nalUnits(bytes) {
  const units = [];
  let start = -1;
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (bytes[i] === 0 && bytes[i + 1] === 0 && bytes[i + 2] === 1) {
      if (start >= 0) units.push(bytes.subarray(start, i > 0 && bytes[i - 1] === 0 ? i - 1 : i));
      start = i + 3;
      i += 2;
    }
  }
  if (start >= 0 && start < bytes.length) units.push(bytes.subarray(start));
  return units;
}

class Fmp4 {
  /** A muted <video> fed with the packets through a SourceBuffer; onFrame(ts) on each frame presented. */
  constructor(video, codec, onFrame, onError) {
    this.video = video;
    this.codec = codec;
    this.onFrame = onFrame;
    this.onError = onError;
    this.queue = [];
    this.parameters = null; // the SPS and PPS of the init segment appended last
    this.init = null;
    this.sequence = 0;
    this.firstTs = null;
    this.lastTs = null;
    // a frame lasts twice the gap to the one before (the first: 200 ms): the browser takes a frame more
    // than two durations after the last for a discontinuity and drops all up to the next keyframe, so a
    // late frame (or frames skipped upstream) must not look like one; the overlap costs nothing
    this.duration = 200;
    this.buffer = null;
    this.source = new MediaSource();
    this.url = URL.createObjectURL(this.source);
    video.src = this.url;
    this.source.addEventListener("sourceopen", () => {
      try {
        this.buffer = this.source.addSourceBuffer('video/mp4; codecs="' + codec + '"');
        this.buffer.addEventListener("updateend", () => this.next());
        this.buffer.addEventListener("error", () => this.onError("the browser refused a fragment"));
        this.next();
      } catch (e) {
        this.onError("Media Source cannot play " + codec + ": " + (e.message || e));
      }
    }, { once: true });
    const watch = (now, meta) => {
      if (this.closed) return;
      if (this.firstTs !== null) this.onFrame(this.firstTs + Math.round(meta.mediaTime * 1000));
      video.requestVideoFrameCallback(watch);
    };
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(watch);
  }

  push(head, annexB) {
    if (this.queue.length > MAX_WAITING) { // the source never opened, or the buffer never finishes: bounded
      this.onError("the Media Source does not take the video");
      return false;
    }
    const units = nalUnits(annexB);
    const sps = head.key ? units.find((u) => (u[0] & 31) === 7) : null;
    const pps = head.key ? units.find((u) => (u[0] & 31) === 8) : null;
    const parameters = sps && pps ? sps.join(",") + ";" + pps.join(",") : null;
    if (parameters !== null && parameters !== this.parameters) { // the first, or a new size: an init segment
      this.parameters = parameters;
      this.init = this.initSegment(sps, pps, head.width || 640, head.height || 480);
      this.queue.push(this.init);
      if (this.firstTs === null) this.firstTs = head.ts;
    }
    if (!this.init) return false;
    const samples = units.filter((u) => ![7, 8, 9].includes(u[0] & 31)).map((u) => [u32(u.length), u]);
    if (this.lastTs !== null && head.ts > this.lastTs) this.duration = Math.min(1000, 2 * (head.ts - this.lastTs));
    this.lastTs = head.ts;
    this.queue.push(this.fragment(concat(samples), head.ts - this.firstTs, head.key));
    this.next();
    return true;
  }

  next() {
    const buffer = this.buffer, video = this.video;
    if (!buffer || buffer.updating || this.closed) return;
    const ranges = buffer.buffered;
    if (ranges.length) {
      const end = ranges.end(ranges.length - 1);
      if (end - video.currentTime > MSE_BEHIND || video.currentTime < ranges.start(0)) {
        video.currentTime = Math.max(ranges.start(ranges.length - 1), end - 0.02); // to the live edge
      }
      if (video.paused) video.play().catch(() => {});
      if (video.currentTime - ranges.start(0) > 2 * MSE_KEEP) {
        buffer.remove(0, video.currentTime - MSE_KEEP);
        return;
      }
    }
    const segment = this.queue.shift();
    if (!segment) return;
    try {
      buffer.appendBuffer(segment);
    } catch (e) {
      this.onError("the browser refused a fragment: " + (e.message || e));
    }
  }

  initSegment(sps, pps, width, height) {
    const avcC = box("avcC", u8(1), u8(sps[1]), u8(sps[2]), u8(sps[3]), u8(0xff), u8(0xe1), u16(sps.length), sps,
      u8(1), u16(pps.length), pps);
    const avc1 = box("avc1", zeros(6), u16(1), zeros(16), u16(width), u16(height), u32(0x00480000), u32(0x00480000),
      zeros(4), u16(1), zeros(32), u16(0x18), u16(0xffff), avcC);
    const stbl = box("stbl", full("stsd", 0, 0, u32(1), avc1), full("stts", 0, 0, u32(0)),
      full("stsc", 0, 0, u32(0)), full("stsz", 0, 0, u32(0), u32(0)), full("stco", 0, 0, u32(0)));
    const minf = box("minf", full("vmhd", 0, 1, zeros(8)), box("dinf", full("dref", 0, 0, u32(1), full("url ", 0, 1))),
      stbl);
    const mdia = box("mdia", full("mdhd", 0, 0, zeros(8), u32(1000), u32(0), u16(0x55c4), u16(0)),
      full("hdlr", 0, 0, u32(0), ascii("vide"), zeros(12), ascii("video\0")), minf);
    const tkhd = full("tkhd", 0, 3, zeros(8), u32(1), zeros(4), u32(0), zeros(8), zeros(8), MATRIX,
      u32(width << 16), u32(height << 16));
    const mvhd = full("mvhd", 0, 0, zeros(8), u32(1000), u32(0), u32(0x00010000), u16(0x0100), zeros(10), MATRIX,
      zeros(24), u32(2));
    const mvex = box("mvex", full("trex", 0, 0, u32(1), u32(1), u32(0), u32(0), u32(0)));
    return concat([box("ftyp", ascii("isom"), u32(0x200), ascii("isomiso6avc1mp41")),
      box("moov", mvhd, box("trak", tkhd, mdia), mvex)]);
  }

  fragment(data, time, key) {
    const flags = key ? 0x02000000 : 0x01010000; // sync: depends on none; else depends on others, not sync
    const sequence = ++this.sequence;
    const moof = (offset) => box("moof", full("mfhd", 0, 0, u32(sequence)),
      box("traf", full("tfhd", 0, 0x020000, u32(1)), full("tfdt", 1, 0, u64(Math.max(0, time))),
        full("trun", 0, 0x000701, u32(1), u32(offset), u32(this.duration), u32(data.length), u32(flags))));
    const size = moof(0).length;
    return concat([moof(size + 8), box("mdat", data)]);
  }

  close() {
    this.closed = true;
    try { if (this.source.readyState === "open") this.source.endOfStream(); } catch (e) { /* closing anyway */ }
    this.video.removeAttribute("src");
    this.video.load();
    URL.revokeObjectURL(this.url);
  }
}

export default {
  template: `<div class="edge-video"><canvas ref="canvas" :data-video="task" data-frames="0"
    style="display: none; width: 100%; height: auto; background: #000"></canvas><video ref="video"
    :data-video="task" data-frames="0" muted playsinline disablepictureinpicture
    style="display: none; width: 100%; height: auto; background: #000"></video></div>`,
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
    this.mse = null;
    if (typeof window.VideoDecoder !== "undefined" && typeof window.EncodedVideoChunk !== "undefined") {
      this.api = "webcodecs";
    } else if (typeof window.MediaSource !== "undefined") {
      this.api = "mse";
      this.$refs.video.muted = true; // autoplay needs it; the stream has no sound anyway
    } else {
      this.report("jpeg", "this browser has neither WebCodecs nor Media Source Extensions");
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
      const canvas = this.$refs.canvas, video = this.$refs.video;
      if (canvas) canvas.style.display = mode === "h264" && this.api === "webcodecs" ? "block" : "none";
      if (video) video.style.display = mode === "h264" && this.api === "mse" ? "block" : "none";
      this.$emit("mode", { mode: mode, why: why, api: this.api });
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
      if (this.api === "mse") {
        this.feedMse(head, new Uint8Array(data, 4 + length));
        return;
      }
      if (head.key && (head.codec !== this.codec || !this.decoder || this.decoder.state !== "configured")) {
        if (!this.configure(head.codec)) return;
      }
      if (!this.decoder || (this.waitKey && !head.key)) return; // joined mid-stream: from the next keyframe
      if (!head.key && this.decoder.decodeQueueSize > MAX_QUEUE) { // behind: skip to the next keyframe
        this.dropped++;
        this.askKeyframe();
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
    feedMse(head, body) {
      if (head.key && head.codec !== this.codec) { // a new stream (or the first): a new MediaSource
        this.closeDecoder();
        if (typeof head.codec !== "string" || !MediaSource.isTypeSupported('video/mp4; codecs="' + head.codec + '"')) {
          this.giveUp("this browser's Media Source cannot play " + String(head.codec).slice(0, 40));
          return;
        }
        this.mse = new Fmp4(this.$refs.video, head.codec, (ts) => this.presented(ts), (why) => this.failed(why));
        this.codec = head.codec;
      }
      if (!this.mse || (this.waitKey && !head.key)) return;
      if (!head.key && this.mse.buffer && this.mse.queue.length > MAX_QUEUE) { // behind: to the next keyframe
        this.dropped++;
        this.askKeyframe();
        return;
      }
      if (!this.mse.push(head, body)) this.askKeyframe();
      else this.waitKey = false;
    },
    presented(ts) {
      const video = this.$refs.video;
      if (!video || this.stopped) return;
      this.lastTs = ts;
      this.frames++;
      this.shown++;
      this.lastDrawn = performance.now();
      video.dataset.frames = String(this.frames);
      video.dataset.ts = String(ts);
      if (this.mode !== "h264") this.report("h264", "");
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
      if (this.mse) this.mse.close();
      this.mse = null;
      if (this.decoder && this.decoder.state !== "closed") {
        try { this.decoder.close(); } catch (e) { /* closed meanwhile */ }
      }
      this.decoder = null;
      this.codec = null;
    },
    askKeyframe() {
      // wait for a keyframe, and ask the viewer for one now (through the panel, which asks at most once a second)
      if (!this.waitKey) this.sendAsk();
      this.waitKey = true;
    },
    sendAsk() {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send("keyframe");
    },
    failed(error) {
      this.errors++;
      this.closeDecoder();
      this.askKeyframe();
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
      if (this.lastPacket && now - this.lastPacket < 1000 && now - Math.max(this.lastDrawn, this.started) > 1500) {
        this.sendAsk(); // packets come but nothing is shown: start again from a fresh keyframe
      }
      if (this.mode === "h264") {
        if (now - this.lastDrawn > STALL_MS) {
          this.report("jpeg", "H.264 stalled: no frame for " + Math.round((now - this.lastDrawn) / 1000) + " s");
        } else {
          const canvas = this.$refs.canvas, video = this.$refs.video, mse = this.api === "mse";
          this.$emit("stats", {
            fps: this.shown, frames: this.frames, width: mse ? video.videoWidth : canvas.width,
            height: mse ? video.videoHeight : canvas.height,
            age: this.lastTs === null ? null : Math.max(0, Date.now() - this.lastTs),
            kbps: Math.round(this.bytes * 8 / 1000), dropped: this.dropped,
          });
        }
      } else if (this.lastPacket === 0 && now - this.started > SILENT_MS) {
        this.report("jpeg", "no H.264 from the viewer (its h264 is off, or an older agent)");
      }
      this.shown = 0;
      this.bytes = 0;
    },
  },
};
