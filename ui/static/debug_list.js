// The debug sidebar's list: lines arrive in batches (push) or as a whole after a filter change
// (reset), newest first, at most `max` kept. Text is rendered with Vue interpolation (escaped);
// thumbnails are data: URLs the server made.
export default {
  template: `
    <div class="edge-debug-list">
      <div v-for="r in rows" :key="r.n" class="edge-debug-row" :data-source="r.source">
        <div class="edge-debug-meta"><span class="edge-debug-time">{{ r.time }}</span>
          <span class="edge-debug-source">{{ r.source }}</span></div>
        <img v-if="r.image" :src="r.image" class="edge-debug-thumb" :alt="r.text" />
        <div class="edge-debug-value">{{ r.text }}</div>
      </div>
      <div v-if="!rows.length" class="edge-debug-empty">{{ empty }}</div>
    </div>
  `,
  props: {
    initial: Array,
    max: Number,
    empty: String,
  },
  data() {
    return { rows: (this.initial || []).slice().reverse() };
  },
  methods: {
    push(batch) {
      // batch: oldest first; the list: newest first
      const added = batch.slice().reverse();
      const rows = added.concat(this.rows);
      this.rows = rows.length > this.max ? rows.slice(0, this.max) : rows;
    },
    reset(batch) {
      this.rows = batch.slice().reverse().slice(0, this.max);
    },
  },
};
