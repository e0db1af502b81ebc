// The `serve` page: turns a drawing into the network's 16x16 input the way the USPS digits were made,
// asks /api/predict for every layer's values and draws them. Plain JavaScript, no library.
"use strict";

const lecunPage = (() => {
  const SIDE = 16;
  // Pixels with at least this much ink count for the bounding box (anti-aliasing leaves fainter ones).
  const BOX_INK = 0.03;
  // Pen width of the strokes the network sees, as a share of the drawing's size: USPS strokes are
  // about 2.5 of the 16 pixels across, whatever size the digit was written at.
  const PEN_SHARE = 0.18;

  /// Ink (0..1) of every pixel of a canvas: its alpha channel (the strokes are drawn on transparency).
  function inkOf(canvas) {
    const { width, height } = canvas;
    const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    const ink = new Float32Array(width * height);
    for (let i = 0; i < ink.length; i++) ink[i] = rgba[4 * i + 3] / 255;
    return ink;
  }

  /// The network's input for an ink image: deslanted so that the ink's second moments are upright
  /// (the USPS digits' x-y covariance is 0 to three decimals), the bounding box scaled into 16x16 with
  /// its aspect kept and centred (as USPS: tall digits span all 16 rows), each pixel's ink coverage
  /// mapped to [-1, 1] with ink +1 and paper -1. Row-major, 256 values.
  function normalizeInk(ink, width, height) {
    const out = new Float32Array(SIDE * SIDE).fill(-1);
    let mass = 0, sx = 0, sy = 0;
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const v = ink[y * width + x];
        if (v > 0) { mass += v; sx += v * x; sy += v * y; }
      }
    if (mass < 1e-6) return out;
    const mx = sx / mass, my = sy / mass;
    let sxy = 0, syy = 0;
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        const v = ink[y * width + x];
        if (v > 0) { sxy += v * (x - mx) * (y - my); syy += v * (y - my) * (y - my); }
      }
    // Shear x' = x - slant (y - my) makes the covariance of x' and y zero.
    const slant = syy > 0 ? sxy / syy : 0;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let y = 0; y < height; y++) {
      const shift = -slant * (y + 0.5 - my);
      for (let x = 0; x < width; x++)
        if (ink[y * width + x] > BOX_INK) {
          x0 = Math.min(x0, x + shift); x1 = Math.max(x1, x + shift + 1);
          y0 = Math.min(y0, y); y1 = Math.max(y1, y + 1);
        }
    }
    if (x0 === Infinity) return out;
    const scale = SIDE / Math.max(x1 - x0, y1 - y0);
    const ox = (SIDE - (x1 - x0) * scale) / 2, oy = (SIDE - (y1 - y0) * scale) / 2;
    // Each source pixel, sheared and scaled, is a small square; its ink goes to the output pixels it
    // overlaps in proportion to the overlap (area averaging).
    const coverage = new Float64Array(SIDE * SIDE);
    for (let y = 0; y < height; y++) {
      const shift = -slant * (y + 0.5 - my);
      const v0 = (y - y0) * scale + oy, v1 = v0 + scale;
      const r0 = Math.max(0, Math.floor(v0)), r1 = Math.min(SIDE - 1, Math.ceil(v1) - 1);
      for (let x = 0; x < width; x++) {
        const v = ink[y * width + x];
        if (v <= 0) continue;
        const u0 = (x + shift - x0) * scale + ox, u1 = u0 + scale;
        const c0 = Math.max(0, Math.floor(u0)), c1 = Math.min(SIDE - 1, Math.ceil(u1) - 1);
        for (let r = r0; r <= r1; r++) {
          const wy = Math.min(v1, r + 1) - Math.max(v0, r);
          if (wy <= 0) continue;
          for (let c = c0; c <= c1; c++) {
            const wx = Math.min(u1, c + 1) - Math.max(u0, c);
            if (wx > 0) coverage[r * SIDE + c] += v * wx * wy;
          }
        }
      }
    }
    for (let i = 0; i < out.length; i++) out[i] = Math.max(-1, Math.min(1, 2 * coverage[i] - 1));
    return out;
  }

  /// The strokes drawn on a transparent canvas of the pad's size with a pen proportional to the
  /// drawing's size (so a small and a large digit give the same 16x16 input).
  function renderStrokes(strokes, width, height) {
    const canvas = document.createElement("canvas");
    canvas.width = width; canvas.height = height;
    const points = strokes.flat();
    if (points.length === 0) return canvas;
    const xs = points.map(p => p.x), ys = points.map(p => p.y);
    const size = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys));
    const ctx = canvas.getContext("2d");
    ctx.lineWidth = Math.max(4, PEN_SHARE * size);
    ctx.lineCap = "round"; ctx.lineJoin = "round"; ctx.strokeStyle = "#000"; ctx.fillStyle = "#000";
    for (const stroke of strokes) {
      if (stroke.length === 1) {
        ctx.beginPath(); ctx.arc(stroke[0].x, stroke[0].y, ctx.lineWidth / 2, 0, 2 * Math.PI); ctx.fill();
        continue;
      }
      ctx.beginPath();
      ctx.moveTo(stroke[0].x, stroke[0].y);
      for (const p of stroke.slice(1)) ctx.lineTo(p.x, p.y);
      ctx.stroke();
    }
    return canvas;
  }

  /// The network's input for a list of strokes (each a list of {x, y} in pad pixels).
  function inputOfStrokes(strokes, width, height) {
    return normalizeInk(inkOf(renderStrokes(strokes, width, height)), width, height);
  }

  return { SIDE, inkOf, normalizeInk, renderStrokes, inputOfStrokes };
})();

(() => {
  const pad = document.getElementById("pad");
  if (!pad) return;
  const padCtx = pad.getContext("2d");
  const $ = id => document.getElementById(id);

  // Grey of a value on the page's one scale: -1 white, +1 black.
  const grey = v => Math.round((1 - Math.max(-1, Math.min(1, v))) * 127.5);

  function paint(canvas, values, offset = 0) {
    const { width, height } = canvas;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(width, height);
    for (let i = 0; i < width * height; i++) {
      const g = grey(values[offset + i]);
      image.data.set([g, g, g, 255], 4 * i);
    }
    ctx.putImageData(image, 0, 0);
  }

  function sized(canvas) {
    const px = Number(canvas.dataset.px);
    canvas.style.width = canvas.width * px + "px";
    canvas.style.height = canvas.height * px + "px";
    return canvas;
  }

  function makeMaps(container, count, side, px) {
    const maps = [];
    for (let i = 0; i < count; i++) {
      const c = document.createElement("canvas");
      c.width = side; c.height = side; c.className = "map"; c.dataset.px = px;
      c.title = `${container.id.toUpperCase()} map ${i}`;
      container.appendChild(sized(c));
      maps.push(c);
    }
    return maps;
  }

  const inputCanvas = sized($("input"));
  const h1Maps = makeMaps($("h1"), 12, 8, 7);
  const h2Maps = makeMaps($("h2"), 12, 4, 10);
  const h3Canvas = sized($("h3"));
  const outCanvas = sized($("out"));
  const scoreRows = [];
  for (let k = 0; k < 10; k++) {
    const label = document.createElement("span"); label.textContent = k;
    const bar = document.createElement("span"); bar.className = "bar"; bar.appendChild(document.createElement("span"));
    const value = document.createElement("span"); value.textContent = "";
    $("scores").append(label, bar, value);
    scoreRows.push({ label, bar, value });
  }

  function showReading(reading) {
    $("class").textContent = reading.class;
    h1Maps.forEach((c, m) => paint(c, reading.layers.h1, m * 64));
    h2Maps.forEach((c, m) => paint(c, reading.layers.h2, m * 16));
    paint(h3Canvas, reading.layers.h3);
    paint(outCanvas, reading.layers.out);
    reading.scores.forEach((s, k) => {
      const row = scoreRows[k], win = k === reading.class;
      const v = Math.max(-1, Math.min(1, s));
      const inner = row.bar.firstChild;
      inner.style.left = "0";
      inner.style.width = 50 * (v + 1) + "%";
      row.value.textContent = (s >= 0 ? "+" : "") + s.toFixed(2);
      for (const el of [row.label, row.bar, row.value]) el.classList.toggle("win", win);
    });
    document.body.dataset.predictions = String(Number(document.body.dataset.predictions || 0) + 1);
  }

  // One request in flight at a time; a drawing that changes meanwhile is sent when it returns.
  let pending = null, inFlight = false;
  async function predict(pixels) {
    pending = pixels;
    if (inFlight) return;
    inFlight = true;
    try {
      while (pending) {
        const body = JSON.stringify({ pixels: Array.from(pending, v => Math.round(v * 1e4) / 1e4) });
        pending = null;
        const response = await fetch("api/predict", { method: "POST", headers: { "Content-Type": "application/json" }, body });
        const json = await response.json();
        if (!response.ok) throw new Error(json.error || response.statusText);
        showReading(json);
      }
    } catch (e) {
      $("source").textContent = "error: " + e.message;
    } finally {
      inFlight = false;
    }
  }

  function showInput(pixels) {
    paint(inputCanvas, pixels);
    predict(pixels);
  }

  // Drawing: strokes in pad pixels; each change is normalized and shown in the same frame.
  let strokes = [], drawing = false, frame = 0;
  const PEN = 14;
  function point(e) {
    const r = pad.getBoundingClientRect();
    return { x: (e.clientX - r.left) * pad.width / r.width, y: (e.clientY - r.top) * pad.height / r.height };
  }
  function update() {
    frame = 0;
    showInput(lecunPage.inputOfStrokes(strokes, pad.width, pad.height));
  }
  const schedule = () => { if (!frame) frame = requestAnimationFrame(update); };
  function clearPad() {
    strokes = [];
    padCtx.clearRect(0, 0, pad.width, pad.height);
  }
  pad.addEventListener("pointerdown", e => {
    e.preventDefault();
    pad.setPointerCapture(e.pointerId);
    if (strokes.length === 0 && document.body.dataset.shown === "digit") clearPad();
    document.body.dataset.shown = "drawing";
    $("source").textContent = "your drawing";
    drawing = true;
    const p = point(e);
    strokes.push([p]);
    padCtx.fillStyle = "#000";
    padCtx.beginPath(); padCtx.arc(p.x, p.y, PEN / 2, 0, 2 * Math.PI); padCtx.fill();
    schedule();
  });
  pad.addEventListener("pointermove", e => {
    if (!drawing) return;
    const stroke = strokes[strokes.length - 1];
    const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
    for (const ev of (events.length ? events : [e])) {
      const p = point(ev), q = stroke[stroke.length - 1];
      stroke.push(p);
      padCtx.strokeStyle = "#000"; padCtx.lineWidth = PEN; padCtx.lineCap = "round";
      padCtx.beginPath(); padCtx.moveTo(q.x, q.y); padCtx.lineTo(p.x, p.y); padCtx.stroke();
    }
    schedule();
  });
  const end = () => { if (drawing) { drawing = false; schedule(); } };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);

  $("clear").addEventListener("click", () => {
    clearPad();
    document.body.dataset.shown = "";
    $("source").textContent = "draw with mouse, pen or finger";
    showInput(new Float32Array(256).fill(-1));
  });

  // A data-set digit in the pad (enlarged) and the view.
  function showDigit(digit) {
    clearPad();
    const small = document.createElement("canvas");
    small.width = 16; small.height = 16;
    paint(small, digit.pixels);
    padCtx.imageSmoothingEnabled = false;
    padCtx.drawImage(small, 0, 0, pad.width, pad.height);
    document.body.dataset.shown = "digit";
    $("source").textContent = `${digit.split} digit ${digit.index}, label ${digit.label}`;
    showInput(digit.pixels);
  }

  async function loadModel() {
    const model = await (await fetch("api/model")).json();
    const test = model.test ? `test error ${model.test.error.toFixed(2)}% (${model.test.misses} of ${model.test.count})` : "test error unknown";
    $("model-info").textContent = `${model.recipe ?? "model"} · seed ${model.seed ?? "?"} · ${model.data_set ?? ""} · ${test}`;
    $("model-info").title = model.file;
    const gallery = $("gallery");
    if (model.data_problem) gallery.textContent = model.data_problem;
    for (const miss of model.misses) {
      const figure = document.createElement("figure");
      const c = document.createElement("canvas");
      c.width = 16; c.height = 16; c.className = "map"; c.dataset.px = 3;
      figure.append(sized(c));
      const caption = document.createElement("figcaption");
      caption.innerHTML = `${miss.label}→<span class="pred">${miss.predicted}</span>`;
      figure.append(caption);
      figure.title = `test digit ${miss.index}: label ${miss.label}, read as ${miss.predicted}`;
      gallery.append(figure);
      fetch(`api/digits/test/${miss.index}`).then(r => r.json()).then(digit => {
        paint(c, digit.pixels);
        figure.addEventListener("click", () => showDigit(digit));
      });
    }
  }

  showInput(new Float32Array(256).fill(-1));
  loadModel().catch(e => { $("model-info").textContent = "cannot load the model: " + e.message; });
})();
