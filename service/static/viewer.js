// liqmap viewer: a plain client of the public API (/v1/markets, /v1/models,
// /v1/heatmaps/.../latest and .../stream). No build step, no dependencies.
//
// The picture follows service/render.py (the PNG route): colour = viridis((usd / largest cell) ** 0.5);
// plot pixel column px shows frame column floor(px * columns / width), plot pixel row py (0 at the top)
// shows price row floor((height - 1 - py) * rows / height), and a pixel covering several cells shows the largest.
"use strict";

(() => {
  // viridis at 0, 0.1, ..., 1 (the published 11-step palette), interpolated linearly.
  const VIRIDIS_ANCHORS = ["#440154", "#482576", "#414487", "#35608D", "#2A788E", "#21908C",
    "#22A884", "#43BF71", "#7AD151", "#BBDF27", "#FDE725"];
  const GAMMA = 0.5;
  const LUT = buildLut(256);
  const COLOURS = {
    background: "#0e1117", text: "#dee2e9", muted: "#8b94a0", grid: "rgba(255,255,255,0.11)",
    up: "#0ecb81", down: "#f6465d", long: "#4fc3f7", short: "#ff9800", price: "#ffffff",
  };
  const LAYOUT = { left: 8, top: 10, gutter: 58, priceAxis: 74, bottom: 26 };
  const MINUTE = 60000, HOUR = 60 * MINUTE, DAY = 24 * HOUR;
  const TIME_STEPS = [5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR, 6 * HOUR,
    12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 61 * DAY];
  const KEY_STORAGE = "liqmap.apiKey";
  const STREAM_RETRY_MS = 3000;
  const DEFAULT_RANGE = "24h";

  const $ = (id) => document.getElementById(id);
  const el = {
    venue: $("venue"), symbol: $("symbol"), model: $("model"), range: $("range"), leverage: $("leverage"),
    side: $("side"), png: $("png-link"), live: $("live"), liveText: $("live-text"), message: $("message"),
    synthetic: $("synthetic-note"),
    chart: $("chart"), heatmap: $("heatmap"), overlay: $("overlay"), tooltip: $("tooltip"), legend: $("legend"),
    clusters: $("clusters"), clustersEmpty: $("clusters-empty"), info: $("frame-info"), apiKey: $("api-key"),
  };

  const state = {
    markets: [],
    models: new Map(),
    selection: { exchange: "", symbol: "", model: "", range: "", leverage: "all", side: "both" },
    frame: null,
    view: null, // arrays derived from the frame (see prepare)
    geometry: null, // where the plot sits on the canvas (see draw)
    loadSeq: 0,
    stream: null,
    events: 0,
    retryTimer: null,
    highlight: null, // a cluster's price band to outline
    pointer: null, // where the pointer last was over the chart
  };

  // ---------------------------------------------------------------- formatting

  function buildLut(size) {
    const anchors = VIRIDIS_ANCHORS.map((hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)));
    const lut = new Uint8Array(size * 3);
    for (let i = 0; i < size; i++) {
      const t = (i / (size - 1)) * (anchors.length - 1);
      const k = Math.min(Math.floor(t), anchors.length - 2);
      const f = t - k;
      for (let c = 0; c < 3; c++) lut[i * 3 + c] = Math.round(anchors[k][c] + (anchors[k + 1][c] - anchors[k][c]) * f);
    }
    return lut;
  }

  function colourPosition(usd, scale) {
    return scale > 0 ? Math.pow(Math.min(1, Math.max(0, usd / scale)), GAMMA) : 0;
  }

  function formatUsd(value) {
    const units = [[1e9, "B"], [1e6, "M"], [1e3, "K"]];
    for (const [limit, suffix] of units) {
      if (Math.abs(value) >= limit) return `$${Number((value / limit).toPrecision(3))}${suffix}`;
    }
    return `$${Math.round(value)}`;
  }

  const fullUsd = (value) => `$${Math.round(value).toLocaleString("en-US")}`;

  function decimalsFor(step) {
    return step > 0 ? Math.max(0, -Math.floor(Math.log10(step))) : 2;
  }

  function formatPrice(value, step) {
    const digits = decimalsFor(step);
    return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function niceStep(span, maxTicks) {
    if (span <= 0 || maxTicks < 1) return 1;
    const raw = span / maxTicks;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const factor of [1, 2, 2.5, 5, 10]) if (factor * power >= raw) return factor * power;
    return 10 * power;
  }

  const pad2 = (n) => String(n).padStart(2, "0");
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const clock = (d) => `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  const day = (d) => `${MONTHS[d.getUTCMonth()]} ${pad2(d.getUTCDate())}`;
  const stamp = (ms) => {
    const d = new Date(ms);
    return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${clock(d)} UTC`;
  };

  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 120) return `${s} s ago`;
    if (s < 7200) return `${Math.round(s / 60)} min ago`;
    return `${Math.round(s / 3600)} h ago`;
  }

  function text(tag, content, className) {
    const node = document.createElement(tag);
    node.textContent = content;
    if (className) node.className = className;
    return node;
  }

  // ---------------------------------------------------------------- API

  function apiHeaders() {
    const key = localStorage.getItem(KEY_STORAGE);
    return key ? { "X-API-Key": key } : {};
  }

  async function api(path) {
    const response = await fetch(path, { headers: apiHeaders(), cache: "no-cache" });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        message = (body.error && body.error.message) || body.msg || message;
      } catch (_) { /* not JSON: keep the status line */ }
      const error = new Error(message);
      error.status = response.status;
      error.retryAfter = Number(response.headers.get("retry-after")) || 5;
      throw error;
    }
    return response.json();
  }

  const marketPath = (s) => `/v1/heatmaps/${encodeURIComponent(s.exchange)}/${encodeURIComponent(s.symbol)}`;

  function frameQuery(s) {
    const params = new URLSearchParams({ model: s.model, range: s.range });
    if (s.leverage !== "all") params.set("leverage", s.leverage);
    return params;
  }

  function showMessage(message, kind) {
    el.message.hidden = !message;
    el.message.textContent = message || "";
    el.message.className = `message ${kind || ""}`;
  }

  // ---------------------------------------------------------------- selection

  function readHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    for (const name of ["exchange", "symbol", "model", "range", "leverage", "side"]) {
      if (params.get(name)) state.selection[name] = params.get(name);
    }
  }

  function writeHash() {
    const s = state.selection;
    const params = new URLSearchParams({ exchange: s.exchange, symbol: s.symbol, model: s.model, range: s.range });
    if (s.leverage !== "all") params.set("leverage", s.leverage);
    if (s.side !== "both") params.set("side", s.side);
    history.replaceState(null, "", `#${params}`);
  }

  function fill(select, options, preferred) {
    select.replaceChildren(...options.map(([value, label]) => {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = label;
      return option;
    }));
    const values = options.map(([value]) => value);
    select.value = values.includes(preferred) ? preferred : values[0] || "";
    return select.value;
  }

  function currentMarket() {
    const s = state.selection;
    return state.markets.find((m) => m.exchange === s.exchange && m.symbol === s.symbol);
  }

  function populate() {
    const s = state.selection;
    const venues = [...new Set(state.markets.map((m) => m.exchange))].sort((a, b) => (a === "all") - (b === "all") || a.localeCompare(b));
    s.exchange = fill(el.venue, venues.map((v) => [v, v === "all" ? "all venues" : v]), s.exchange);
    const symbols = state.markets.filter((m) => m.exchange === s.exchange).map((m) => m.symbol).sort();
    s.symbol = fill(el.symbol, symbols.map((v) => [v, v]), s.symbol);
    const market = currentMarket();
    const models = (market ? market.models : []).map((name) => {
      const model = state.models.get(name);
      return [name, model ? `${name} ${model.version}` : name];
    });
    s.model = fill(el.model, models, s.model);
    s.range = fill(el.range, (market ? market.ranges : []).map((r) => [r, r]), s.range || DEFAULT_RANGE);
    el.leverage.value = s.leverage;
    el.side.value = s.side;
    // Simulated data is said plainly, above the chart, whenever it is what is shown.
    el.synthetic.hidden = !(market && market.synthetic);
  }

  function onSelect(name, value) {
    state.selection[name] = value;
    populate();
    writeHash();
    if (name === "side") {
      if (state.frame) setFrame(state.frame);
      return;
    }
    loadFrame();
    openStream();
  }

  // ---------------------------------------------------------------- frames

  async function loadFrame() {
    const seq = ++state.loadSeq;
    const s = { ...state.selection };
    clearTimeout(state.retryTimer);
    if (!s.exchange || !s.symbol) return;
    document.body.dataset.state = "loading";
    el.png.href = `${marketPath(s)}/latest.png?${frameQuery(s)}&width=1600&height=900`;
    try {
      const frame = await api(`${marketPath(s)}/latest?${frameQuery(s)}`);
      if (seq !== state.loadSeq) return; // a newer selection won
      showMessage("");
      if (s.leverage !== "all" && frame.leverage !== s.leverage) {
        showMessage("This server does not filter by leverage yet: every tier is shown.", "");
      }
      setFrame(frame);
    } catch (error) {
      if (seq !== state.loadSeq) return;
      document.body.dataset.state = "error";
      showMessage(error.message, error.status === 503 ? "" : "error");
      if (error.status === 503 || error.status === 429 || !error.status) {
        state.retryTimer = setTimeout(loadFrame, error.retryAfter * 1000 || 5000);
      }
    }
  }

  function prepare(frame) {
    const columns = frame.x.length;
    const rows = frame.y.length;
    const long = new Float64Array(columns * rows);
    const short = new Float64Array(columns * rows);
    for (let c = 0; c < columns; c++) {
      const lc = frame.long[c] || [], sc = frame.short[c] || [];
      for (let r = 0; r < rows; r++) {
        long[c * rows + r] = lc[r] || 0;
        short[c * rows + r] = sc[r] || 0;
      }
    }
    const side = state.selection.side;
    const shown = new Float64Array(columns * rows);
    let scale = 0;
    for (let i = 0; i < shown.length; i++) {
      const v = side === "long" ? long[i] : side === "short" ? short[i] : long[i] + short[i];
      shown[i] = v;
      if (v > scale) scale = v;
    }
    const index = new Uint8Array(columns * rows);
    for (let i = 0; i < shown.length; i++) index[i] = Math.round(colourPosition(shown[i], scale) * 255);
    const y = frame.y;
    const halfRow = rows > 1 ? (y[1] - y[0]) / 2 : 0.5;
    return {
      columns, rows, long, short, index, scale,
      t0: columns ? frame.x[0] : 0,
      t1: columns ? frame.x[columns - 1] + frame.column_ms : 1,
      priceLow: rows ? y[0] - halfRow : 0,
      priceHigh: rows ? y[rows - 1] + halfRow : 1,
      halfRow,
    };
  }

  function setFrame(frame) {
    state.frame = frame;
    state.view = prepare(frame);
    const supportsLeverage = "leverage" in frame;
    for (const option of el.leverage.options) option.disabled = option.value !== "all" && !supportsLeverage;
    draw();
    renderLegend();
    renderClusters();
    renderInfo();
    // A new frame under a resting pointer: the tooltip tells the new frame's numbers.
    if (!el.tooltip.hidden && state.pointer) onHover(state.pointer);
    Object.assign(document.body.dataset, {
      state: "ready", frameId: frame.id, exchange: frame.exchange, symbol: frame.symbol,
      model: frame.model, range: frame.range,
    });
  }

  // ---------------------------------------------------------------- drawing

  function draw() {
    const view = state.view;
    const canvas = el.heatmap;
    const box = el.chart.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    for (const c of [canvas, el.overlay]) {
      c.width = Math.max(1, Math.round(box.width * dpr));
      c.height = Math.max(1, Math.round(box.height * dpr));
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = COLOURS.background;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!view) return;

    const left = LAYOUT.left, top = LAYOUT.top;
    const width = Math.max(40, box.width - left - LAYOUT.gutter - LAYOUT.priceAxis);
    const height = Math.max(40, box.height - top - LAYOUT.bottom);
    const g = {
      left, top, width, height, dpr,
      pw: Math.round(width * dpr), ph: Math.round(height * dpr),
      x0: Math.round(left * dpr), y0: Math.round(top * dpr),
    };
    state.geometry = g;
    ctx.putImageData(raster(view, g.pw, g.ph), g.x0, g.y0);

    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.font = "12px system-ui, sans-serif";
    drawPriceAxis(ctx, g, view);
    drawTimeAxis(ctx, g, view);
    drawCoverage(ctx, g, view);
    drawCandles(ctx, g, view);
    drawClusters(ctx, g, view);
    drawOverlay();
  }

  // The plot raster: every pixel the largest colour index of the cells it covers.
  function raster(view, pw, ph) {
    const { columns, rows, index } = view;
    const image = new ImageData(pw, ph);
    if (!columns || !rows) return image;
    const byColumn = new Uint8Array(pw * rows);
    for (let px = 0; px < pw; px++) {
      const c0 = Math.floor((px * columns) / pw);
      const c1 = Math.max(c0 + 1, Math.floor(((px + 1) * columns) / pw));
      for (let r = 0; r < rows; r++) {
        let m = 0;
        for (let c = c0; c < c1; c++) { const v = index[c * rows + r]; if (v > m) m = v; }
        byColumn[px * rows + r] = m;
      }
    }
    const data = image.data;
    for (let py = 0; py < ph; py++) {
      const jb = ph - 1 - py;
      const r0 = Math.floor((jb * rows) / ph);
      const r1 = Math.max(r0 + 1, Math.floor(((jb + 1) * rows) / ph));
      for (let px = 0; px < pw; px++) {
        let m = 0;
        for (let r = r0; r < r1; r++) { const v = byColumn[px * rows + r]; if (v > m) m = v; }
        const o = (py * pw + px) * 4;
        data[o] = LUT[m * 3]; data[o + 1] = LUT[m * 3 + 1]; data[o + 2] = LUT[m * 3 + 2]; data[o + 3] = 255;
      }
    }
    return image;
  }

  const xOfTime = (g, v, ms) => g.left + ((ms - v.t0) / (v.t1 - v.t0)) * g.width;
  const xOfColumn = (g, v, c) => g.left + (c * g.width) / v.columns;
  const yOfPrice = (g, v, p) => g.top + ((v.priceHigh - p) / (v.priceHigh - v.priceLow)) * g.height;

  function drawPriceAxis(ctx, g, v) {
    const step = niceStep(v.priceHigh - v.priceLow, Math.max(2, Math.floor(g.height / 48)));
    ctx.fillStyle = COLOURS.muted;
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    for (let p = Math.ceil(v.priceLow / step) * step; p < v.priceHigh; p += step) {
      const y = Math.round(yOfPrice(g, v, p)) + 0.5;
      ctx.strokeStyle = COLOURS.grid;
      ctx.beginPath(); ctx.moveTo(g.left, y); ctx.lineTo(g.left + g.width, y); ctx.stroke();
      ctx.fillText(formatPrice(p, step), g.left + g.width + LAYOUT.gutter + 6, y);
    }
  }

  function drawTimeAxis(ctx, g, v) {
    const span = v.t1 - v.t0;
    const maxTicks = Math.max(1, Math.floor(g.width / 90));
    const step = TIME_STEPS.find((s) => span / s <= maxTicks) || TIME_STEPS[TIME_STEPS.length - 1];
    ctx.fillStyle = COLOURS.muted;
    ctx.textBaseline = "top";
    ctx.textAlign = "center";
    for (let ms = Math.ceil(v.t0 / step) * step; ms < v.t1; ms += step) {
      const x = Math.round(xOfTime(g, v, ms)) + 0.5;
      ctx.strokeStyle = COLOURS.grid;
      ctx.beginPath(); ctx.moveTo(x, g.top); ctx.lineTo(x, g.top + g.height); ctx.stroke();
      if (x + 30 > g.left + g.width + LAYOUT.gutter) continue;
      const d = new Date(ms);
      const midnight = d.getUTCHours() === 0 && d.getUTCMinutes() === 0;
      ctx.fillText(step >= DAY || midnight ? day(d) : clock(d), x, g.top + g.height + 6);
    }
    ctx.textAlign = "right";
    ctx.fillText("UTC", g.left + g.width + LAYOUT.gutter + LAYOUT.priceAxis - 6, g.top + g.height + 6);
  }

  // Columns before the first input bar hold no data (not "no levels"): dimmed and said so.
  function drawCoverage(ctx, g, v) {
    const x = Math.min(xOfTime(g, v, state.frame.coverage_start), g.left + g.width);
    if (x - g.left < 24) return;
    ctx.fillStyle = "rgba(14,17,23,0.6)";
    ctx.fillRect(g.left, g.top, x - g.left, g.height);
    ctx.strokeStyle = "rgba(139,148,160,0.8)";
    ctx.beginPath(); ctx.moveTo(Math.round(x) + 0.5, g.top); ctx.lineTo(Math.round(x) + 0.5, g.top + g.height); ctx.stroke();
    if (x - g.left > 160) {
      ctx.fillStyle = COLOURS.muted;
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.fillText("no data before coverage", (g.left + x) / 2, g.top + g.height / 2);
    }
  }

  function drawCandles(ctx, g, v) {
    const candles = state.frame.candles;
    const columnWidth = g.width / v.columns;
    let last = null;
    ctx.lineWidth = 1;
    if (columnWidth >= 3) {
      for (let c = 0; c < v.columns; c++) {
        const k = candles[c];
        if (!k || k[4] == null) continue;
        const [, o, h, l, close] = k;
        const x0 = xOfColumn(g, v, c), x1 = xOfColumn(g, v, c + 1);
        const pad = Math.max(0.5, (x1 - x0) * 0.15);
        const mid = Math.round((x0 + x1) / 2) + 0.5;
        const colour = close >= o ? COLOURS.up : COLOURS.down;
        ctx.strokeStyle = colour;
        ctx.fillStyle = colour;
        ctx.beginPath(); ctx.moveTo(mid, yOfPrice(g, v, h)); ctx.lineTo(mid, yOfPrice(g, v, l)); ctx.stroke();
        const yTop = yOfPrice(g, v, Math.max(o, close)), yBottom = yOfPrice(g, v, Math.min(o, close));
        ctx.fillRect(x0 + pad, yTop, Math.max(1, x1 - x0 - 2 * pad), Math.max(1, yBottom - yTop));
        last = close;
      }
    } else {
      ctx.strokeStyle = COLOURS.price;
      ctx.beginPath();
      let started = false;
      for (let c = 0; c < v.columns; c++) {
        const k = candles[c];
        if (!k || k[4] == null) continue;
        const x = (xOfColumn(g, v, c) + xOfColumn(g, v, c + 1)) / 2, y = yOfPrice(g, v, k[4]);
        if (started) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        started = true;
        last = k[4];
      }
      ctx.stroke();
    }
    if (last == null) return;
    const y = Math.round(yOfPrice(g, v, last)) + 0.5;
    ctx.strokeStyle = "rgba(255,255,255,0.75)";
    ctx.setLineDash([4, 4]);
    ctx.beginPath(); ctx.moveTo(g.left, y); ctx.lineTo(g.left + g.width, y); ctx.stroke();
    ctx.setLineDash([]);
    const label = formatPrice(last, niceStep(v.priceHigh - v.priceLow, 40) / 10);
    const x = g.left + g.width + LAYOUT.gutter + 2;
    const w = ctx.measureText(label).width + 8;
    ctx.fillStyle = "#f0f0f0";
    ctx.fillRect(x, y - 9, w, 18);
    ctx.fillStyle = COLOURS.background;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.fillText(label, x + 4, y);
  }

  function drawClusters(ctx, g, v) {
    const clusters = [...(state.frame.clusters || [])].sort((a, b) => (b.usd || 0) - (a.usd || 0));
    const labelled = [];
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    for (const cluster of clusters) {
      if (cluster.price_low == null || cluster.price_high == null) continue;
      const colour = COLOURS[cluster.side] || COLOURS.text;
      const yTop = Math.max(g.top, yOfPrice(g, v, cluster.price_high));
      const yBottom = Math.min(g.top + g.height, Math.max(yTop + 3, yOfPrice(g, v, cluster.price_low)));
      if (yBottom <= g.top || yTop >= g.top + g.height) continue;
      ctx.fillStyle = colour;
      ctx.fillRect(g.left + g.width + 3, yTop, 4, yBottom - yTop);
      const mid = (yTop + yBottom) / 2;
      if (labelled.every((other) => Math.abs(other - mid) > 13)) {
        ctx.fillText(formatUsd(cluster.usd || 0), g.left + g.width + 11, mid);
        labelled.push(mid);
      }
    }
    ctx.font = "12px system-ui, sans-serif";
  }

  // Crosshair, hovered cell and highlighted cluster: on their own canvas, so hovering redraws nothing else.
  function drawOverlay(hover) {
    const ctx = el.overlay.getContext("2d");
    const g = state.geometry, v = state.view;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, el.overlay.width, el.overlay.height);
    if (!g || !v) return;
    ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
    if (state.highlight) {
      const yTop = yOfPrice(g, v, state.highlight.price_high), yBottom = yOfPrice(g, v, state.highlight.price_low);
      ctx.strokeStyle = COLOURS[state.highlight.side] || COLOURS.text;
      ctx.lineWidth = 1.5;
      ctx.setLineDash([6, 3]);
      ctx.strokeRect(g.left + 0.5, yTop, g.width - 1, Math.max(2, yBottom - yTop));
      ctx.setLineDash([]);
    }
    if (hover) {
      ctx.strokeStyle = "rgba(255,255,255,0.35)";
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(hover.x, g.top); ctx.lineTo(hover.x, g.top + g.height);
      ctx.moveTo(g.left, hover.y); ctx.lineTo(g.left + g.width, hover.y);
      ctx.stroke();
    }
  }

  function renderLegend() {
    const canvas = el.legend, v = state.view;
    const dpr = window.devicePixelRatio || 1;
    const cssWidth = canvas.clientWidth || 280, cssHeight = 44;
    canvas.width = Math.round(cssWidth * dpr);
    canvas.height = Math.round(cssHeight * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);
    const left = 4, right = cssWidth - 4, barTop = 4, barHeight = 14, barWidth = right - left;
    for (let i = 0; i < barWidth; i++) {
      const m = Math.round((i / (barWidth - 1)) * 255);
      ctx.fillStyle = `rgb(${LUT[m * 3]},${LUT[m * 3 + 1]},${LUT[m * 3 + 2]})`;
      ctx.fillRect(left + i, barTop, 1, barHeight);
    }
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = COLOURS.text;
    ctx.textBaseline = "top";
    if (!v || v.scale <= 0) {
      ctx.fillText("no liquidation levels in this frame", left, barTop + barHeight + 6);
      return;
    }
    const step = niceStep(v.scale, 4);
    const ticks = [0];
    for (let t = step; t < v.scale * 0.88; t += step) ticks.push(t);
    const taken = [];
    for (const usd of [v.scale, ...ticks]) {
      const x = left + colourPosition(usd, v.scale) * (barWidth - 1);
      const label = formatUsd(usd);
      const w = ctx.measureText(label).width;
      const start = Math.min(Math.max(x - w / 2, left), right - w);
      if (taken.some(([a, b]) => start < b + 6 && start + w > a - 6)) continue;
      taken.push([start, start + w]);
      ctx.fillRect(Math.round(x), barTop + barHeight, 1, 4);
      ctx.fillText(label, start, barTop + barHeight + 6);
    }
    const what = { both: "long + short", long: "long", short: "short" }[state.selection.side];
    $("legend-note").textContent = `Colour: ${what} liquidation USD per cell, from $0 to the largest cell ` +
      `(${fullUsd(v.scale)}) on a square-root curve so that small levels stay visible; ticks are absolute USD. ` +
      "Longs sit below the price, shorts above.";
  }

  function renderClusters() {
    const frame = state.frame;
    const body = el.clusters.tBodies[0];
    const clusters = [...(frame.clusters || [])].sort((a, b) => Math.abs(a.distance || 0) - Math.abs(b.distance || 0));
    const step = niceStep(state.view.priceHigh - state.view.priceLow, 40) / 10;
    body.replaceChildren(...clusters.map((cluster) => {
      const row = document.createElement("tr");
      const side = document.createElement("td");
      side.append(text("span", cluster.side || "?", `chip ${cluster.side || ""}`));
      const distance = cluster.distance == null ? "–" : `${cluster.distance >= 0 ? "+" : "−"}${Math.abs(cluster.distance * 100).toFixed(2)}%`;
      row.append(
        side,
        text("td", `${formatPrice(cluster.price_low, step)} – ${formatPrice(cluster.price_high, step)}`),
        text("td", formatUsd(cluster.usd || 0)),
        text("td", cluster.share == null ? "–" : `${(cluster.share * 100).toFixed(1)}%`),
        text("td", distance),
      );
      row.addEventListener("mouseenter", () => { state.highlight = cluster; drawOverlay(); });
      row.addEventListener("mouseleave", () => { state.highlight = null; drawOverlay(); });
      return row;
    }));
    el.clusters.hidden = clusters.length === 0;
    el.clustersEmpty.hidden = clusters.length !== 0;
  }

  function renderInfo() {
    const f = state.frame;
    const stats = f.stats || {};
    const entries = [
      ["market", `${f.exchange} ${f.symbol}`],
      ["model", `${f.model} ${f.model_version}`],
      ["params", (f.params_hash || "").slice(0, 12)],
      ["range", `${f.range} · ${f.x.length} × ${Math.round(f.column_ms / MINUTE)} min columns, ${f.y.length} rows`],
      ["coverage", `from ${stamp(f.coverage_start)}`],
      ["data until", stamp(f.data_until)],
      ["computed", `${stamp(f.generated_at)} (${ago(f.generated_at)})`],
      ["longs open", fullUsd(stats.total_long_usd || 0)],
      ["shorts open", fullUsd(stats.total_short_usd || 0)],
      ["largest cell", fullUsd(stats.max_cell_usd || 0)],
      ["frame", f.id],
      ["updates", `${state.events} over the stream`],
    ];
    el.info.replaceChildren(...entries.flatMap(([k, v]) => [text("dt", k), text("dd", v)]));
    el.info.lastElementChild.id = "stream-count";
  }

  // ---------------------------------------------------------------- hover

  function cellAt(event) {
    const g = state.geometry, v = state.view;
    if (!g || !v || !v.columns || !v.rows) return null;
    const box = el.heatmap.getBoundingClientRect();
    const mx = event.clientX - box.left, my = event.clientY - box.top;
    const px = Math.floor((mx - g.left) * g.dpr), py = Math.floor((my - g.top) * g.dpr);
    if (px < 0 || py < 0 || px >= g.pw || py >= g.ph) return null;
    const column = Math.floor((px * v.columns) / g.pw);
    const row = Math.floor(((g.ph - 1 - py) * v.rows) / g.ph);
    return { column, row, x: mx, y: my };
  }

  function onHover(event) {
    state.pointer = { clientX: event.clientX, clientY: event.clientY };
    const cell = cellAt(event);
    if (!cell) {
      el.tooltip.hidden = true;
      drawOverlay();
      return;
    }
    const f = state.frame, v = state.view;
    const i = cell.column * v.rows + cell.row;
    const start = f.x[cell.column], end = start + f.column_ms;
    const step = niceStep(v.priceHigh - v.priceLow, 40) / 10;
    const price = f.y[cell.row];
    const candle = f.candles[cell.column];
    const tip = el.tooltip;
    tip.replaceChildren(
      text("div", `${day(new Date(start))} ${clock(new Date(start))}–${clock(new Date(end))} UTC`, "when"),
      row("price", `${formatPrice(price - v.halfRow, step)} – ${formatPrice(price + v.halfRow, step)}`),
      row("long liq.", fullUsd(v.long[i]), "long"),
      row("short liq.", fullUsd(v.short[i]), "short"),
      row("total", fullUsd(v.long[i] + v.short[i])),
      ...(candle && candle[4] != null ? [row("close", formatPrice(candle[4], step))] : []),
    );
    Object.assign(tip.dataset, { column: cell.column, row: cell.row, long: v.long[i], short: v.short[i], time: start, price });
    tip.hidden = false;
    const box = el.chart.getBoundingClientRect();
    const w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = `${cell.x + 16 + w > box.width ? cell.x - 16 - w : cell.x + 16}px`;
    tip.style.top = `${Math.min(Math.max(4, cell.y - h / 2), box.height - h - 4)}px`;
    drawOverlay({ x: cell.x, y: cell.y });
  }

  function row(label, value, className) {
    const node = document.createElement("div");
    node.className = `row ${className || ""}`;
    node.append(text("span", label), text("b", value));
    return node;
  }

  // ---------------------------------------------------------------- live updates

  // Server-sent events over fetch (not EventSource) so that an API key can be sent as a header.
  async function openStream() {
    if (state.stream) state.stream.abort();
    const controller = new AbortController();
    state.stream = controller;
    const s = { ...state.selection };
    const url = `${marketPath(s)}/stream?${new URLSearchParams({ model: s.model, range: s.range })}`;
    let lastId = null;
    while (!controller.signal.aborted) {
      try {
        const headers = { ...apiHeaders(), Accept: "text/event-stream" };
        // Ask for what was computed since the frame on screen: nothing is missed between load and subscribe.
        const since = lastId || (state.frame && state.frame.exchange === s.exchange && state.frame.symbol === s.symbol ? state.frame.id : null);
        if (since) headers["Last-Event-ID"] = since;
        const response = await fetch(url, { headers, signal: controller.signal, cache: "no-store" });
        if (!response.ok || !response.body) throw new Error(`stream answered ${response.status}`);
        setLive("live", "live");
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          // A "\r" at the end may be half of "\r\n": keep it for the next chunk.
          const complete = buffer.endsWith("\r") ? buffer.slice(0, -1) : buffer;
          const rest = buffer.slice(complete.length);
          const blocks = complete.replace(/\r\n?/g, "\n").split("\n\n");
          buffer = blocks.pop() + rest;
          for (const block of blocks) {
            const event = parseEvent(block);
            if (event && event.event === "frame") {
              if (event.id) lastId = event.id;
              onFrameEvent(event);
            }
          }
        }
      } catch (error) {
        if (controller.signal.aborted) return;
      }
      if (controller.signal.aborted) return;
      setLive("retrying", "reconnecting");
      await new Promise((resolve) => setTimeout(resolve, STREAM_RETRY_MS));
    }
  }

  function parseEvent(block) {
    const event = { event: "message", data: [], id: null };
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") event.data.push(value);
      else if (field === "event") event.event = value;
      else if (field === "id") event.id = value;
    }
    return event.data.length ? { ...event, data: event.data.join("\n") } : null;
  }

  function onFrameEvent(event) {
    state.events += 1;
    document.body.dataset.streamEvents = String(state.events);
    setLive("live", `live · ${clock(new Date())} UTC`);
    const count = $("stream-count");
    if (count) count.textContent = `${state.events} over the stream`;
    if (!state.frame || event.id !== state.frame.id) loadFrame();
  }

  function setLive(status, label) {
    el.live.dataset.status = status;
    el.liveText.textContent = label;
  }

  // A plain link cannot send the API key: with one stored, the PNG is fetched with it
  // and shown from a blob URL instead.
  async function openPng(event) {
    if (!localStorage.getItem(KEY_STORAGE)) return;
    event.preventDefault();
    const tab = window.open("", "_blank");
    try {
      const response = await fetch(el.png.href, { headers: apiHeaders() });
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      const url = URL.createObjectURL(await response.blob());
      if (tab) tab.location = url; else window.open(url, "_blank");
    } catch (error) {
      if (tab) tab.close();
      showMessage(`PNG: ${error.message}`, "error");
    }
  }

  // ---------------------------------------------------------------- start

  function setup() {
    readHash();
    el.apiKey.value = localStorage.getItem(KEY_STORAGE) || "";
    $("key-form").addEventListener("submit", (event) => event.preventDefault());
    el.apiKey.addEventListener("change", () => {
      const key = el.apiKey.value.trim();
      if (key) localStorage.setItem(KEY_STORAGE, key); else localStorage.removeItem(KEY_STORAGE);
      start();
    });
    for (const [name, select] of [["exchange", el.venue], ["symbol", el.symbol], ["model", el.model],
      ["range", el.range], ["leverage", el.leverage], ["side", el.side]]) {
      select.addEventListener("change", () => onSelect(name, select.value));
    }
    el.png.addEventListener("click", openPng);
    el.heatmap.addEventListener("mousemove", onHover);
    el.heatmap.addEventListener("mouseleave", () => { el.tooltip.hidden = true; drawOverlay(); });
    new ResizeObserver(() => { if (state.view) { draw(); renderLegend(); } }).observe(el.chart);
    window.addEventListener("hashchange", () => {
      const before = JSON.stringify(state.selection);
      readHash();
      if (JSON.stringify(state.selection) !== before) onSelect("exchange", state.selection.exchange);
    });
    start();
  }

  async function start() {
    clearTimeout(state.retryTimer);
    try {
      const [markets, models] = await Promise.all([api("/v1/markets"), api("/v1/models")]);
      state.markets = markets.markets;
      state.models = new Map(models.models.map((m) => [m.name, m]));
    } catch (error) {
      document.body.dataset.state = "error";
      showMessage(`Cannot list markets: ${error.message}`, "error");
      state.retryTimer = setTimeout(start, 5000);
      return;
    }
    if (!state.markets.length) {
      showMessage("No markets yet: the first data is being collected.", "");
      state.retryTimer = setTimeout(start, 3000);
      return;
    }
    populate();
    writeHash();
    loadFrame();
    openStream();
  }

  setup();
})();
