// A table whose rows are patched in place: the server sends only the rows that changed, of the one
// page it shows (the server filters, sorts and pages all rows; this holds the page and draws the pager).
// Text is rendered with Vue interpolation (escaped); nothing here builds HTML from strings.
export default {
  template: `
    <div class="edge-live-table">
      <table>
        <thead>
          <tr><th v-for="c in columns" :key="c.name" :class="'col-' + c.name" :data-column="c.name"
                  :aria-sort="sortOf(c) || 'none'" @click="$emit('sort', {column: c.name})">{{ c.label }}<span
                  class="edge-sort">{{ sortOf(c) === 'ascending' ? ' ▲' : sortOf(c) === 'descending' ? ' ▼' : '' }}</span></th></tr>
        </thead>
        <tbody>
          <tr v-for="key in order" :key="key" :data-key="key">
            <td v-for="c in columns" :key="c.name" :class="'col-' + c.name">
              <template v-if="c.kind === 'badge'">
                <span class="edge-badge" :class="'edge-' + cell(key, c, 'grey').color" :title="cell(key, c, '').title || ''">{{ cell(key, c, '').text }}</span>
              </template>
              <template v-else-if="c.kind === 'spark'">
                <span class="edge-spark">
                  <svg width="84" height="22" viewBox="0 0 84 22">
                    <polyline :points="points(byKey[key][c.name])" fill="none" stroke="currentColor" stroke-width="1.5" />
                  </svg>
                  <span class="edge-spark-last">{{ lastText(byKey[key][c.name], c.unit) }}</span>
                </span>
              </template>
              <template v-else-if="c.kind === 'chips'">
                <span v-for="(chip, i) in (byKey[key][c.name] || [])" :key="i" class="edge-chip"
                      :class="[chip.color ? 'edge-' + chip.color : '', chip.value !== undefined ? 'edge-clickable' : '']"
                      :data-value="chip.value" :title="chip.title || ''"
                      @click="chip.value !== undefined && $emit('cell', {key: key, column: c.name, value: chip.value})">{{ chip.text }}</span>
              </template>
              <template v-else-if="c.kind === 'actions'">
                <button v-for="a in c.actions" :key="a.name" type="button" class="edge-action"
                        :data-action="a.name" @click="$emit('action', {key: key, action: a.name})">{{ a.label }}</button>
              </template>
              <template v-else-if="c.kind === 'link'">
                <a class="edge-link" href="#" @click.prevent="$emit('cell', {key: key, column: c.name, value: key})">{{ byKey[key][c.name] }}</a>
              </template>
              <template v-else>
                <span :title="c.wrap ? '' : String(byKey[key][c.name] ?? '')" :class="c.wrap ? 'edge-wrap' : ''">{{ byKey[key][c.name] }}</span>
              </template>
            </td>
          </tr>
          <tr v-if="order.length === 0"><td :colspan="columns.length" class="edge-empty">{{ empty }}</td></tr>
        </tbody>
      </table>
      <div v-if="page.text" class="edge-pager">
        <button type="button" class="edge-action" data-page="previous" :disabled="page.page <= 0"
                @click="$emit('page', {delta: -1})">‹ previous</button>
        <span class="edge-pager-text">{{ page.text }}</span>
        <button type="button" class="edge-action" data-page="next" :disabled="page.page >= page.pages - 1"
                @click="$emit('page', {delta: 1})">next ›</button>
      </div>
    </div>
  `,
  props: {
    columns: Array,
    rows: Array,
    rowKey: { type: String, default: "id" },
    empty: { type: String, default: "nothing yet" },
    pager: Object,
    sort: Object,
  },
  data() {
    return { byKey: {}, order: [], page: {} };
  },
  watch: {
    rows: {
      handler() {
        this.reset();
      },
      immediate: true,
    },
    pager: {
      handler(value) {
        this.page = value || {};
      },
      immediate: true,
    },
  },
  methods: {
    reset() {
      const byKey = {};
      const order = [];
      for (const row of this.rows || []) {
        byKey[row[this.rowKey]] = row;
        order.push(row[this.rowKey]);
      }
      this.byKey = byKey;
      this.order = order;
    },
    patch(upserts, removed, order, pager) {
      for (const key of removed) delete this.byKey[key];
      for (const row of upserts) this.byKey[row[this.rowKey]] = row;
      if (order) this.order = order;
      if (pager) this.page = pager;
    },
    sortOf(column) {
      if (!this.sort || this.sort.column !== column.name) return "";
      return this.sort.descending ? "descending" : "ascending";
    },
    cell(key, column, fallback) {
      const value = this.byKey[key][column.name];
      if (value && typeof value === "object") return value;
      return { text: value ?? "", color: fallback };
    },
    points(cell) {
      // a spark cell is its values, or {values, text} when they are not current (the text says so)
      const values = Array.isArray(cell) ? cell : (cell && cell.values) || [];
      if (values.length < 2) return "";
      const max = Math.max(...values);
      const min = Math.min(...values);
      const span = max - min || 1;
      const step = 84 / (values.length - 1);
      return values.map((v, i) => `${(i * step).toFixed(1)},${(20 - ((v - min) / span) * 18).toFixed(1)}`).join(" ");
    },
    lastText(cell, unit) {
      if (cell && !Array.isArray(cell)) return cell.text || "";
      const values = cell;
      if (!values || values.length === 0) return "";
      return `${values[values.length - 1]}${unit || ""}`;
    },
  },
};
