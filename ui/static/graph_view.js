// A pannable, zoomable node-graph view in SVG: nodes with input ports on the left and output
// ports on the right, wires between them. Editing (connecting, selecting, moving) emits events;
// the server owns the graph and sends it back. Labels are rendered with Vue interpolation (escaped).
// A node of kind "topic" (id "topic:some/topic") is an MQTT topic: a pill with one input (tasks
// publish there) and one output (tasks subscribe there); its wires are named by the node id alone.
// When editable, the visible centre (in graph coordinates) is reported as a "view" event, so the
// server can put new nodes where the user is looking. A task type dropped from the palette is a
// "typedrop" event with the type and the point under the mouse in graph coordinates.
// Several nodes are selected with shift-click or a shift-drag of the background (a rubber band):
// a "selectmany" event with their ids; dragging one of them moves them all ("movemany").
// Comments ("notes": sticky notes, dragged like nodes: "notemove") and groups (a labelled box
// around their tasks, drawn from where the tasks are) are drawn under and over the nodes; when not
// editable (the running view) they are drawn the same, read-only: dragging them pans the view.
// When editable, the editing keys pressed anywhere on the page but in a field (an input, a text
// area, a code editor: their own undo and clipboard work there) are a "key" event with the action:
// undo (Ctrl+Z), redo (Ctrl+Shift+Z, Ctrl+Y), copy, cut (not while text is selected), paste (with
// the system clipboard's text, which the browser gives a paste event without asking), delete.
const W = 190;
const HEAD = 36;
const ROW = 20;
const TOPIC_H = 44;
const DRAG_TYPE = "application/x-edgetasks-type"; // ui/palette.py's DRAG_TYPE
const NOTE_W = 180;
const NOTE_LINE = 15;
const GROUP_PAD = 16;
// Graphs of more nodes than this draw only what is in view (plus a margin): a 1,000-task running view
// laid out all its nodes' SVG twice on loading (0.9 s of its 3 s in Chromium), most of them off screen.
const CULL_MIN = 150;
const CULL_MARGIN = 300; // px beyond the visible area still drawn, so a small pan shows no gap

export default {
  template: `
    <div class="edge-graph" tabindex="0" @keydown.esc="pending = null">
      <svg ref="svg" class="edge-graph-svg" :class="{ 'edge-readonly': !editable }" @pointerdown="onBackgroundDown" @pointermove="onMove"
           @pointerup="onUp" @pointerleave="onUp" @wheel.prevent="onWheel" @dragover="onDragOver" @drop="onDrop">
        <g :transform="'translate(' + pan.x + ',' + pan.y + ') scale(' + pan.k + ')'">
          <g v-for="g in groupBoxes()" :key="'group-' + g.id" class="edge-group" :data-group="g.id"
             :class="{ 'edge-selected': isSelected('group', g.id) }">
            <rect :x="g.x" :y="g.y" :width="g.w" :height="g.h" rx="10" class="edge-group-box"
                  :style="{ fill: g.color, stroke: g.color }" pointer-events="none" />
            <rect :x="g.x" :y="g.y - 20" :width="Math.min(g.w, 14 + 7 * clip(g.label || g.id, 30).length)" height="20" rx="4"
                  class="edge-group-tab" :style="{ fill: g.color }" @pointerdown.stop="onGroupDown($event, g)">
              <title>group {{ g.label || g.id }}{{ editable ? ': drag to move its tasks, click to rename, recolour or ungroup' : '' }}</title>
            </rect>
            <text :x="g.x + 7" :y="g.y - 6" class="edge-group-label" pointer-events="none">{{ clip(g.label || g.id, 30) }}</text>
          </g>
          <g v-for="e in shownEdges()" :key="e.key" class="edge-wire" :class="{ 'edge-selected': isSelected('edge', e.key) }"
             :data-edge="e.key" @pointerdown.stop @click.stop="choose('edge', e.key)">
            <path :d="wirePath(e)" class="edge-wire-hit" />
            <path :d="wirePath(e)" class="edge-wire-line" />
          </g>
          <path v-if="pending && cursor" :d="pendingPath()" class="edge-wire-pending" />
          <g v-for="n in shownNodes()" :key="n.id" :transform="'translate(' + pos(n).x + ',' + pos(n).y + ')'"
             class="edge-node" :class="[n.kind === 'topic' ? 'edge-topic' : 'edge-state-' + (states[n.id] || n.state || 'none'), { 'edge-selected': isSelected('node', n.id) || many.includes(n.id), 'edge-modified': !!n.modified }]"
             :data-node="n.id" :data-kind="n.kind || 'task'">
            <template v-if="n.kind === 'topic'">
              <rect :width="W" :height="TOPIC_H" :rx="TOPIC_H / 2" class="edge-topic-body" @pointerdown.stop="onNodeDown($event, n)">
                <title>{{ n.subtitle }} {{ n.title }}</title>
              </rect>
              <text x="18" y="19" class="edge-topic-title" pointer-events="none">{{ clip(n.title, 26) }}</text>
              <text x="18" y="34" class="edge-node-sub" pointer-events="none">{{ n.subtitle }}</text>
            </template>
            <template v-else>
              <rect :width="W" :height="height(n)" rx="6" class="edge-node-body" />
              <rect :width="W" :height="HEAD" rx="6" class="edge-node-head" @pointerdown.stop="onNodeDown($event, n)" />
              <text x="10" y="15" class="edge-node-title" pointer-events="none">{{ clip(n.title, 24) }}</text>
              <text x="10" y="30" class="edge-node-sub" pointer-events="none">{{ clip(n.subtitle, 30) }}</text>
              <circle v-if="n.modified" :cx="W - 10" cy="10" r="5" class="edge-modified-dot"><title>changed since the last deploy: {{ n.modified }}</title></circle>
              <g v-if="statusOf(n)" class="edge-node-status-line" :data-status="n.id">
                <title>{{ statusOf(n).text }}</title>
                <rect x="2" :y="height(n) + 5" width="9" height="9" rx="2" class="edge-status-dot" :class="'edge-tone-' + statusOf(n).tone" />
                <text x="16" :y="height(n) + 13" class="edge-node-status" :class="'edge-status-' + statusOf(n).tone">{{ clip(statusOf(n).text, 32) }}</text>
              </g>
            </template>
            <g v-for="(p, i) in n.inputs" :key="'in-' + p.name" class="edge-port edge-port-in"
               :class="{ 'edge-port-armed': pending !== null, 'edge-port-missing': p.missing }" :data-port="n.id + '.' + p.name" data-side="in"
               @pointerdown.stop="onInputDown($event, n, p)" @pointerup.stop="onInputUp(n, p)">
              <title>{{ p.title || p.name }}{{ editable || n.kind === 'topic' ? '' : ' · click: inject a value' }}</title>
              <circle cx="0" :cy="portYOf(n, i)" r="7" />
              <text v-if="n.kind !== 'topic'" x="12" :y="portY(i) + 4">{{ clip(p.name, 14) }}</text>
            </g>
            <g v-for="(p, i) in n.outputs" :key="'out-' + p.name" class="edge-port edge-port-out"
               :class="{ 'edge-port-pending': pending && pending.ref === ref(n, p), 'edge-port-missing': p.missing }"
               :data-port="n.id + '.' + p.name" data-side="out" @pointerdown.stop="onOutputDown($event, n, p)">
              <title>{{ p.title || p.name }}</title>
              <circle :cx="W" :cy="portYOf(n, i)" r="7" />
              <text v-if="n.kind !== 'topic'" :x="W - 12" :y="portY(i) + 4" text-anchor="end">{{ clip(p.name, 14) }}</text>
            </g>
            <template v-if="!editable && n.kind !== 'topic'">
            <g v-for="(p, i) in n.outputs" :key="'debug-' + p.name"
               class="edge-debug" :class="{ 'edge-debug-on': debugOn(n.id + '.' + p.name) }" :data-debug="n.id + '.' + p.name"
               @pointerdown.stop @click.stop="$emit('debug', { task: n.id, port: p.name })">
              <title>{{ debugOn(n.id + '.' + p.name) ? 'hide' : 'show' }} {{ n.id }}.{{ p.name }} in the debug sidebar</title>
              <rect :x="W + 9" :y="portYOf(n, i) - 15" width="10" height="10" rx="2" class="edge-debug-toggle" />
            </g>
            </template>
          </g>
          <g v-for="c in notes || []" :key="'note-' + c.id" class="edge-note" :data-note="c.id"
             :class="{ 'edge-selected': isSelected('note', c.id) }" :transform="'translate(' + notePos(c).x + ',' + notePos(c).y + ')'">
            <rect :width="NOTE_W" :height="noteHeight(c)" rx="3" class="edge-note-body" @pointerdown.stop="onNoteDown($event, c)">
              <title>{{ editable ? 'comment: drag to move, click to edit' : 'comment' }}</title>
            </rect>
            <text v-for="(line, i) in noteLines(c)" :key="i" x="8" :y="noteY(i)" class="edge-note-text" pointer-events="none">{{ line }}</text>
          </g>
          <rect v-if="band" :x="Math.min(band.x0, band.x1)" :y="Math.min(band.y0, band.y1)"
                :width="Math.abs(band.x1 - band.x0)" :height="Math.abs(band.y1 - band.y0)" class="edge-band" />
        </g>
      </svg>
      <div class="edge-graph-tools">
        <button type="button" title="fit the graph" @click="fit">fit</button>
        <button type="button" title="zoom in" @click="zoomBy(1.25)">+</button>
        <button type="button" title="zoom out" @click="zoomBy(0.8)">−</button>
        <span v-if="many.length > 1" class="edge-graph-hint">{{ many.length }} selected</span>
        <span v-if="pending" class="edge-graph-hint">connecting {{ pending.ref }}: click an input (Esc cancels)</span>
      </div>
    </div>
  `,
  props: {
    nodes: Array,
    edges: Array,
    editable: Boolean,
    selected: Object,
    debug: Array,
    statuses: Object,
    notes: Array,
    groups: Array,
    multi: Array,
  },
  data() {
    return {
      W: W,
      HEAD: HEAD,
      TOPIC_H: TOPIC_H,
      NOTE_W: NOTE_W,
      many: this.multi || [],
      band: null,
      movedNotes: {},
      viewTimer: null,
      pan: { x: 20, y: 44, k: 1 },
      moved: {},
      states: {},
      status: {},
      watched: this.debug || [],
      drag: null,
      pending: null,
      cursor: null,
      fitted: false,
      sel: this.selected || null,
      box: null,
    };
  },
  watch: {
    selected(value) {
      this.sel = value || null;
    },
    multi(value) {
      this.many = value || [];
    },
    notes() {
      this.movedNotes = {};
    },
    debug(value) {
      this.watched = value || [];
    },
    pan() {
      this.reportView();
    },
    nodes() {
      this.moved = {};
      this.states = {};
      this.status = {};
      if (!this.fitted && this.nodes.length) this.$nextTick(() => this.fit());
    },
  },
  mounted() {
    if (this.editable) {
      this.keyHandler = (evt) => this.onKey(evt);
      this.pasteHandler = (evt) => this.onPaste(evt);
      document.addEventListener("keydown", this.keyHandler);
      document.addEventListener("paste", this.pasteHandler);
    }
    if (this.nodes.length) this.$nextTick(() => this.fit());
    this.$nextTick(() => this.reportView());
    // the drawing's size, for culling, as the browser reports it (reading it would force a layout)
    this.resizer = new ResizeObserver((entries) => {
      const r = entries[entries.length - 1].contentRect;
      if (!this.box || this.box.w !== r.width || this.box.h !== r.height) this.box = { w: r.width, h: r.height };
    });
    this.resizer.observe(this.$refs.svg);
  },
  unmounted() {
    if (this.resizer) this.resizer.disconnect();
    if (this.keyHandler) document.removeEventListener("keydown", this.keyHandler);
    if (this.pasteHandler) document.removeEventListener("paste", this.pasteHandler);
    clearTimeout(this.viewTimer);
  },
  methods: {
    typing() {
      const focus = document.activeElement;
      if (focus && (focus.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(focus.tagName))) return true;
      return !!document.querySelector(".q-dialog"); // a dialog is open: its keys are its own
    },
    onPaste(evt) {
      if (this.typing()) return;
      const text = evt.clipboardData ? evt.clipboardData.getData("text/plain") : "";
      evt.preventDefault();
      this.$emit("key", { action: "paste", text: text.length <= 1000000 ? text : "" });
    },
    onKey(evt) {
      if (!(evt instanceof KeyboardEvent) || evt.repeat || !evt.key || this.typing()) return;
      const k = evt.key.toLowerCase();
      const ctrl = evt.ctrlKey || evt.metaKey;
      let action = null;
      if (ctrl && k === "z") action = evt.shiftKey ? "redo" : "undo";
      else if (ctrl && k === "y") action = "redo";
      else if (ctrl && (k === "c" || k === "x")) {
        if (String(window.getSelection() || "")) return; // text selected on the page: the browser copies it
        action = k === "c" ? "copy" : "cut";
      } else if (!ctrl && !evt.altKey && (k === "delete" || k === "backspace")) action = "delete";
      if (!action) return;
      evt.preventDefault();
      this.$emit("key", { action: action });
    },
    clip(text, n) {
      const s = text == null ? "" : String(text);
      return s.length > n ? s.slice(0, n - 1) + "…" : s;
    },
    isSelected(kind, id) {
      return !!this.sel && this.sel.kind === kind && this.sel.id === id;
    },
    pos(n) {
      return this.moved[n.id] || { x: n.x, y: n.y };
    },
    view() {
      // the visible area in graph coordinates, with a margin; null: draw everything
      if (this.nodes.length <= CULL_MIN) return null;
      if (!this.box) return { x0: 0, y0: 0, x1: -1, y1: -1 }; // its size not known yet: nothing but what is kept
      const k = this.pan.k, m = CULL_MARGIN / k;
      return { x0: -this.pan.x / k - m, y0: -this.pan.y / k - m,
               x1: (this.box.w - this.pan.x) / k + m, y1: (this.box.h - this.pan.y) / k + m };
    },
    kept(n) {
      // drawn whatever the view: the selected or dragged nodes, a wire being drawn from it
      const from = this.pending ? this.pending.ref : "";
      return this.isSelected("node", n.id) || this.many.includes(n.id)
        || (this.drag && this.drag.kind === "node" && this.drag.ids.includes(n.id))
        || (from !== "" && (from.startsWith("topic:") ? from : from.slice(0, from.indexOf("."))) === n.id);
    },
    shownNodes() {
      const v = this.view();
      if (!v) return this.nodes;
      return this.nodes.filter((n) => {
        const p = this.pos(n);
        return (p.x + W >= v.x0 && p.x <= v.x1 && p.y + this.height(n) >= v.y0 && p.y <= v.y1) || this.kept(n);
      });
    },
    shownEdges() {
      const v = this.view();
      if (!v) return this.edges;
      return this.edges.filter((e) => {
        const a = this.anchor(e.from, "out"), b = this.anchor(e.to, "in");
        if (!a || !b) return false;
        return Math.max(a.x, b.x) >= v.x0 && Math.min(a.x, b.x) <= v.x1
          && Math.max(a.y, b.y) >= v.y0 && Math.min(a.y, b.y) <= v.y1;
      });
    },
    ref(n, p) {
      return n.kind === "topic" ? n.id : n.id + "." + p.name;
    },
    reportView() {
      // the visible centre, once panning or zooming has settled
      if (!this.editable) return;
      clearTimeout(this.viewTimer);
      this.viewTimer = setTimeout(() => {
        const svg = this.$refs.svg;
        if (!svg) return;
        const rect = svg.getBoundingClientRect();
        if (rect.width < 50 || rect.height < 50) return;
        this.$emit("view", {
          x: Math.round((rect.width / 2 - this.pan.x) / this.pan.k),
          y: Math.round((rect.height / 2 - this.pan.y) / this.pan.k),
          width: Math.round(rect.width / this.pan.k),
          height: Math.round(rect.height / this.pan.k),
        });
      }, 150);
    },
    height(n) {
      if (n.kind === "topic") return TOPIC_H;
      return HEAD + Math.max(n.inputs.length, n.outputs.length, 1) * ROW + 8;
    },
    portY(i) {
      return HEAD + 4 + ROW / 2 + i * ROW;
    },
    portYOf(n, i) {
      return n.kind === "topic" ? TOPIC_H / 2 : this.portY(i);
    },
    node(id) {
      // by id, from an index made again when the server sends new nodes: each wire looks up its two
      // ends twice per render, and a search of the array took 0.75 s of a 1,000-task running view
      if (this.nodeIndexOf !== this.nodes) {
        this.nodeIndexOf = this.nodes;
        this.nodeIndex = new Map(this.nodes.map((n) => [n.id, n]));
      }
      return this.nodeIndex.get(id);
    },
    anchor(ref, side) {
      const topic = ref.startsWith("topic:");
      const dot = ref.indexOf(".");
      const n = this.node(topic ? ref : ref.slice(0, dot));
      if (!n) return null;
      const ports = side === "out" ? n.outputs : n.inputs;
      const i = topic ? 0 : ports.findIndex((p) => p.name === ref.slice(dot + 1));
      const p = this.pos(n);
      return { x: p.x + (side === "out" ? W : 0), y: p.y + this.portYOf(n, Math.max(i, 0)) };
    },
    curve(a, b) {
      const dx = Math.max(40, Math.abs(b.x - a.x) / 2);
      return `M ${a.x} ${a.y} C ${a.x + dx} ${a.y}, ${b.x - dx} ${b.y}, ${b.x} ${b.y}`;
    },
    wirePath(e) {
      const a = this.anchor(e.from, "out");
      const b = this.anchor(e.to, "in");
      return a && b ? this.curve(a, b) : "";
    },
    pendingPath() {
      const a = this.anchor(this.pending.ref, "out");
      return a ? this.curve(a, this.cursor) : "";
    },
    point(event) {
      const rect = this.$refs.svg.getBoundingClientRect();
      return { x: (event.clientX - rect.left - this.pan.x) / this.pan.k, y: (event.clientY - rect.top - this.pan.y) / this.pan.k };
    },
    onBackgroundDown(event) {
      this.pending = null;
      if (this.editable && event.shiftKey) { // a rubber band: select what it touches
        const at = this.point(event);
        this.band = { x0: at.x, y0: at.y, x1: at.x, y1: at.y };
        this.drag = { kind: "band", sx: event.clientX, sy: event.clientY, moved: false };
        return;
      }
      this.drag = { kind: "pan", sx: event.clientX, sy: event.clientY, x: this.pan.x, y: this.pan.y, moved: false };
    },
    onNodeDown(event, n) {
      const p = this.pos(n);
      const at = this.point(event);
      if (this.editable && event.shiftKey) { // shift-click: add to or take out of the selection
        const many = this.many.length ? this.many.slice() : (this.sel && this.sel.kind === "node" ? [this.sel.id] : []);
        const i = many.indexOf(n.id);
        if (i >= 0) many.splice(i, 1);
        else many.push(n.id);
        this.selectMany(many);
        return;
      }
      // dragging one of several selected nodes moves them all
      const group = this.editable && this.many.includes(n.id) && this.many.length > 1 ? this.many : [n.id];
      const start = {};
      for (const id of group) {
        const m = this.node(id);
        if (m) start[id] = this.pos(m);
      }
      this.drag = { kind: "node", id: n.id, ids: Object.keys(start), start: start, ax: at.x, ay: at.y,
                    sx: event.clientX, sy: event.clientY, moved: false };
    },
    onGroupDown(event, g) {
      // dragging a group's tab moves its tasks; a click selects the group (read-only: it pans)
      if (!this.editable) return this.onBackgroundDown(event);
      const at = this.point(event);
      const start = {};
      for (const id of g.tasks || []) {
        const m = this.node(id);
        if (m) start[id] = this.pos(m);
      }
      this.drag = { kind: "node", id: null, group: g.id, ids: Object.keys(start), start: start, ax: at.x, ay: at.y,
                    sx: event.clientX, sy: event.clientY, moved: false };
    },
    onNoteDown(event, c) {
      if (!this.editable) return this.onBackgroundDown(event); // read-only: the comment stays, the view pans
      const at = this.point(event);
      this.drag = { kind: "note", id: c.id, start: this.notePos(c), ax: at.x, ay: at.y, sx: event.clientX, sy: event.clientY, moved: false };
    },
    notePos(c) {
      return this.movedNotes[c.id] || { x: c.x, y: c.y };
    },
    noteLines(c) {
      const out = [];
      for (const raw of String(c.text || "").split("\n")) { // wrapped at spaces, long words cut; 12 lines at most
        let line = "";
        for (let word of raw.split(" ")) {
          while (word.length > 26) {
            if (line) out.push(line);
            out.push(word.slice(0, 26));
            word = word.slice(26);
            line = "";
          }
          if (line && line.length + 1 + word.length > 26) {
            out.push(line);
            line = word;
          } else {
            line = line ? line + " " + word : word;
          }
        }
        out.push(line);
        if (out.length >= 12) break;
      }
      if (out.length > 12) out.length = 12;
      return out.length ? out : [""];
    },
    noteY(i) {
      return 18 + i * NOTE_LINE;
    },
    noteHeight(c) {
      return 12 + Math.max(1, this.noteLines(c).length) * NOTE_LINE;
    },
    groupBoxes() {
      const boxes = [];
      for (const g of this.groups || []) {
        let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
        for (const id of g.tasks || []) {
          const n = this.node(id);
          if (!n) continue;
          const p = this.pos(n);
          x0 = Math.min(x0, p.x);
          y0 = Math.min(y0, p.y);
          x1 = Math.max(x1, p.x + W);
          y1 = Math.max(y1, p.y + this.height(n));
        }
        if (x0 === Infinity) continue; // no task of it is drawn
        boxes.push({ id: g.id, label: g.label, tasks: g.tasks, color: g.color || "#90a4ae", x: x0 - GROUP_PAD, y: y0 - GROUP_PAD,
                     w: x1 - x0 + 2 * GROUP_PAD, h: y1 - y0 + 2 * GROUP_PAD });
      }
      return boxes;
    },
    selectMany(ids) {
      this.many = ids;
      this.sel = null;
      this.$emit("selectmany", { ids: ids });
    },
    onOutputDown(event, n, p) {
      if (!this.editable) {
        if (n.kind === "topic") this.$emit("topic", { topic: n.title });
        else this.$emit("port", { task: n.id, port: p.name, side: "out" });
        return;
      }
      this.pending = { ref: this.ref(n, p), sx: event.clientX, sy: event.clientY };
      this.cursor = this.point(event);
    },
    onInputDown(event, n, p) {
      if (this.editable) return;
      if (n.kind === "topic") this.$emit("topic", { topic: n.title });
      else this.$emit("port", { task: n.id, port: p.name, side: "in" });
    },
    onInputUp(n, p) {
      if (!this.pending) return;
      this.$emit("connect", { from: this.pending.ref, to: this.ref(n, p) });
      this.pending = null;
    },
    onMove(event) {
      if (this.pending) this.cursor = this.point(event);
      const d = this.drag;
      if (!d) return;
      if (Math.abs(event.clientX - d.sx) + Math.abs(event.clientY - d.sy) > 3) d.moved = true;
      if (d.kind === "pan") {
        this.pan = { x: d.x + event.clientX - d.sx, y: d.y + event.clientY - d.sy, k: this.pan.k };
      } else if (d.kind === "node" && d.moved) {
        const at = this.point(event);
        const moved = { ...this.moved };
        for (const id of d.ids) {
          moved[id] = { x: Math.round(d.start[id].x + at.x - d.ax), y: Math.round(d.start[id].y + at.y - d.ay) };
        }
        this.moved = moved;
      } else if (d.kind === "note" && d.moved) {
        const at = this.point(event);
        this.movedNotes = { ...this.movedNotes, [d.id]: { x: Math.round(d.start.x + at.x - d.ax), y: Math.round(d.start.y + at.y - d.ay) } };
      } else if (d.kind === "band") {
        const at = this.point(event);
        this.band = { ...this.band, x1: at.x, y1: at.y };
      }
    },
    onUp(event) {
      const d = this.drag;
      this.drag = null;
      if (this.pending && event.type === "pointerup") {
        const far = Math.abs(event.clientX - this.pending.sx) + Math.abs(event.clientY - this.pending.sy) > 5;
        if (far) this.pending = null; // a drag released away from any input
      }
      if (!d) return;
      if (d.kind === "band") {
        const b = this.band;
        this.band = null;
        const x0 = Math.min(b.x0, b.x1), x1 = Math.max(b.x0, b.x1), y0 = Math.min(b.y0, b.y1), y1 = Math.max(b.y0, b.y1);
        const hit = this.nodes.filter((n) => {
          const p = this.pos(n);
          return p.x < x1 && p.x + W > x0 && p.y < y1 && p.y + this.height(n) > y0;
        }).map((n) => n.id);
        this.selectMany(hit);
        return;
      }
      if (d.kind === "note") {
        if (d.moved) {
          const p = this.movedNotes[d.id];
          if (p) this.$emit("notemove", { id: d.id, x: p.x, y: p.y });
        } else if (event.type === "pointerup") {
          this.choose("note", d.id);
        }
        return;
      }
      if (d.kind === "node") {
        if (d.group && !d.moved) {
          if (event.type === "pointerup") this.choose("group", d.group);
        } else if (d.moved) {
          if (d.ids.length > 1 || d.group) {
            this.$emit("movemany", { moves: d.ids.filter((id) => this.moved[id]).map((id) => ({ id: id, x: this.moved[id].x, y: this.moved[id].y })) });
          } else {
            const p = this.moved[d.id];
            if (p) this.$emit("move", { id: d.id, x: p.x, y: p.y });
          }
        } else if (event.type === "pointerup") {
          this.choose("node", d.id);
        }
      } else if (d.kind === "pan" && !d.moved && event.type === "pointerup") {
        this.choose(null, null);
      }
    },
    onDragOver(event) {
      // a task type dragged from the palette (ui/palette.py): accept it where the graph is editable
      if (this.editable && event.dataTransfer && event.dataTransfer.types.includes(DRAG_TYPE)) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
      }
    },
    onDrop(event) {
      const type = this.editable && event.dataTransfer ? event.dataTransfer.getData(DRAG_TYPE) : "";
      if (!type) return;
      event.preventDefault();
      this.fitted = true; // the user places nodes: the view stays where it is (no fit when the node arrives)
      const at = this.point(event);
      this.$emit("typedrop", { type: type, x: Math.round(at.x), y: Math.round(at.y) });
    },
    onWheel(event) {
      const rect = this.$refs.svg.getBoundingClientRect();
      this.zoomAt(event.deltaY < 0 ? 1.1 : 1 / 1.1, event.clientX - rect.left, event.clientY - rect.top);
    },
    zoomAt(factor, cx, cy) {
      const k = Math.min(3, Math.max(0.15, this.pan.k * factor));
      const f = k / this.pan.k;
      this.pan = { x: cx - (cx - this.pan.x) * f, y: cy - (cy - this.pan.y) * f, k: k };
    },
    zoomBy(factor) {
      const rect = this.$refs.svg.getBoundingClientRect();
      this.zoomAt(factor, rect.width / 2, rect.height / 2);
    },
    fit() {
      if (!this.nodes.length || !this.$refs.svg) return;
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (const n of this.nodes) {
        const p = this.pos(n);
        x0 = Math.min(x0, p.x);
        y0 = Math.min(y0, p.y);
        x1 = Math.max(x1, p.x + W);
        y1 = Math.max(y1, p.y + this.height(n));
      }
      const rect = this.$refs.svg.getBoundingClientRect();
      if (rect.width < 50 || rect.height < 50) return;
      const k = Math.min(1.2, Math.max(0.15, Math.min((rect.width - 40) / (x1 - x0), (rect.height - 64) / (y1 - y0))));
      this.pan = { x: 20 - x0 * k, y: 44 - y0 * k, k: k };
      this.fitted = true;
    },
    choose(kind, id) {
      this.sel = kind ? { kind: kind, id: id } : null;
      this.many = [];
      this.$emit("select", { kind: kind, id: id });
    },
    setStates(states) {
      this.states = { ...this.states, ...states };
    },
    setStatus(status) {
      this.status = { ...this.status, ...status };
    },
    setDebug(refs) {
      this.watched = refs || [];
    },
    debugOn(ref) {
      return this.watched.includes(ref);
    },
    statusOf(n) {
      const s = n.id in this.status ? this.status[n.id] : (this.statuses || {})[n.id];
      return s && s.text ? s : null;
    },
  },
};
