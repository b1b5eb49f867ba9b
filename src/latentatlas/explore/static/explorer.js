// latentatlas explorer: the page over the JSON/PNG API (listed at /api). No dependencies, works offline.
"use strict";

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                 "#bcbd22", "#17becf"];
const PICK_RADIUS = 10;   // CSS pixels around the pointer in which a point is picked
const MARGIN = 20;         // CSS pixels between the outermost points and the edge

const $ = (id) => document.getElementById(id);
const state = { info: null, map: null, outside: null, px: [], py: [], selected: [], hover: -1, moveBusy: false,
                movePending: false, component: null, mixtures: null, ready: false, lastClickMs: null };
const requests = {};   // the number of the newest request of each kind

// Numbers a request of this kind; the returned check says whether it is still the newest, so that the answer
// to a request overtaken by a later one (a slow t-SNE map, a path of an earlier pair) is dropped.
function newest(kind) {
  const n = (requests[kind] || 0) + 1;
  requests[kind] = n;
  return () => requests[kind] === n;
}

async function api(path, params) {
  const url = path + (params ? "?" + new URLSearchParams(params) : "");
  const response = await fetch(url);
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function showError(err) {
  $("error").textContent = err.message || String(err);
  $("error").hidden = false;
}

function clearError() { $("error").hidden = true; }

function fillSelect(select, values, labels) {
  select.replaceChildren(...values.map((v, i) => new Option(labels ? labels[i] : v, v)));
}

// -- the map ------------------------------------------------------------------------------------
function sizeCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * ratio);
  canvas.height = Math.round(canvas.clientHeight * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return ctx;
}

function layout() {
  const m = state.map, canvas = $("map");
  const w = canvas.clientWidth - 2 * MARGIN, h = canvas.clientHeight - 2 * MARGIN;
  const [x0, x1] = [Math.min(...m.x), Math.max(...m.x)], [y0, y1] = [Math.min(...m.y), Math.max(...m.y)];
  const sx = w / ((x1 - x0) || 1), sy = h / ((y1 - y0) || 1);
  state.px = m.x.map((x) => MARGIN + (x - x0) * sx);
  state.py = m.y.map((y) => MARGIN + h - (y - y0) * sy);
}

function drawMap() {
  if (!state.map) return;
  layout();
  const ctx = sizeCanvas($("map")), m = state.map;
  ctx.clearRect(0, 0, $("map").clientWidth, $("map").clientHeight);
  ctx.lineWidth = 1.5;
  for (let i = 0; i < m.x.length; i++) {
    const colour = PALETTE[m.color[i] % PALETTE.length];
    ctx.beginPath();
    ctx.arc(state.px[i], state.py[i], 3, 0, 2 * Math.PI);
    if (state.outside && state.outside[i]) { ctx.strokeStyle = colour; ctx.stroke(); }   // hollow: outside the hull
    else { ctx.fillStyle = colour; ctx.fill(); }
  }
  $("map").dataset.points = String(m.x.length);
  drawOverlay();
  drawLegend();
}

function drawOverlay() {
  const ctx = sizeCanvas($("overlay"));
  ctx.clearRect(0, 0, $("overlay").clientWidth, $("overlay").clientHeight);
  const mark = (i, text, colour) => {
    ctx.beginPath();
    ctx.arc(state.px[i], state.py[i], 7, 0, 2 * Math.PI);
    ctx.lineWidth = 2.5; ctx.strokeStyle = colour; ctx.stroke();
    if (!text) return;
    ctx.fillStyle = colour;
    ctx.font = "bold 13px system-ui";
    ctx.fillText(text, state.px[i] + 9, state.py[i] - 9);
  };
  if (state.hover >= 0) mark(state.hover, "", "#444");
  state.selected.forEach((row, k) => {
    const i = state.map.index.indexOf(row);
    if (i >= 0) mark(i, "AB"[k], "#000");
  });
}

function drawLegend() {
  const m = state.map;
  const items = m.color_names.map((name, c) =>
    `<span><span class="swatch" style="background:${PALETTE[c % PALETTE.length]}"></span>${name}</span>`);
  const outside = state.outside ? `${state.outside.filter(Boolean).length} of ${m.x.length}` : "computing…";
  items.push(`<span><span class="swatch hollow"></span>outside the training codes' hull (${outside})</span>`);
  $("legend").innerHTML = items.join("");
}

function nearest(x, y) {
  let best = -1, bestDist = PICK_RADIUS * PICK_RADIUS;
  for (let i = 0; i < state.px.length; i++) {
    const d = (state.px[i] - x) ** 2 + (state.py[i] - y) ** 2;
    if (d <= bestDist) { best = i; bestDist = d; }
  }
  return best;
}

function pointerPosition(event) {
  const box = $("overlay").getBoundingClientRect();
  return [event.clientX - box.left, event.clientY - box.top];
}

function imageUrl(row) {
  return state.info.has_images ? `/api/image?index=${row}` : `/api/decode?index=${row}`;
}

function onHover(event) {
  if (!state.map) return;
  const [x, y] = pointerPosition(event), i = nearest(x, y), tip = $("tooltip");
  if (i === state.hover) return;
  state.hover = i;
  drawOverlay();
  if (i < 0) { tip.hidden = true; return; }
  const row = state.map.index[i];
  $("tooltip-img").src = imageUrl(row);
  $("tooltip-text").textContent = `row ${row} · ${state.map.colorBy} ${state.map.color_names[state.map.color[i]]}`;
  tip.style.left = `${Math.min(x + 12, $("map-box").clientWidth - 100)}px`;
  tip.style.top = `${Math.max(y - 110, 0)}px`;
  tip.hidden = false;
}

async function loadMap() {
  const method = $("map-method").value, color = $("color-by").value, current = newest("map");
  clearError();
  $("map-status").textContent = `computing the ${method} map…`;
  try {
    const map = await api("/api/map", { method, color });
    if (!current()) return;
    state.map = { ...map, colorBy: color };
    drawMap();
    $("map-status").textContent = `${state.map.x.length} codes`;
    state.ready = true;
  } catch (err) {
    if (!current()) return;
    showError(err);
    $("map-status").textContent = "";
  }
  if (!state.outside) {     // the same points on every map: their hull flags are fetched once
    try { state.outside = (await api("/api/hull")).outside_hull; drawMap(); } catch (err) { showError(err); }
  }
}

// -- selection, path and move --------------------------------------------------------------------
async function onClick(event) {
  if (!state.map) return;
  const [x, y] = pointerPosition(event), i = nearest(x, y);
  if (i < 0) return;
  const row = state.map.index[i];
  state.selected = state.selected.length === 1 && state.selected[0] !== row ? [state.selected[0], row] : [row];
  drawOverlay();
  const started = performance.now();
  await Promise.all([showSelected(row), state.selected.length === 2 ? showPath() : clearPath()]);
  state.lastClickMs = performance.now() - started;
  $("selected-title").textContent = `answered in ${Math.round(state.lastClickMs)} ms`;
}

async function showSelected(row) {
  const current = newest("point");
  newest("move");   // a move still on its way is of the code selected before
  clearError();
  $("amount").value = "0";
  $("amount-value").textContent = "0 sd";
  $("moved-info").textContent = "";
  $("moved").src = `/api/decode?index=${row}`;
  const images = Promise.all([loaded($("selected-image"), imageUrl(row)),
                              loaded($("selected-decoded"), `/api/decode?index=${row}`)]);
  try {
    const p = await api("/api/point", { index: row });
    if (!current()) return;
    const label = p.label !== undefined ? ` · label ${p.label}` : "";
    const attrs = p.attributes ? ` · ${p.attributes.join(", ") || "no attributes"}` : "";
    $("selected-info").textContent = `row ${row} · ${p.split}${label}${attrs} · ` +
      (p.outside_hull ? "outside the hull of the training codes" : "inside the hull of the training codes");
  } catch (err) { if (current()) showError(err); }
  await images;
}

function clearPath() {
  newest("path");   // a path still on its way is of an earlier pair
  $("strip").replaceChildren();
  $("path-title").textContent = state.selected.length ? "click a second point" : "";
}

// Frames at once; a red border follows on those whose code lies outside the training codes' hull.
function showFrames(box, body, current) {
  const images = body.frames.map((src) => {
    const img = new Image();
    img.src = src;
    img.className = "frame";
    return img;
  });
  box.replaceChildren(...images);
  api("/api/hull", { z: body.codes.map((code) => code.join(",")).join(";") }).then((hull) => {
    if (!current()) return;
    hull.outside_hull.forEach((outside, k) => {
      images[k].classList.toggle("outside", outside);
      images[k].title = outside ? "outside the hull of the training codes" : "inside the hull of the training codes";
    });
  }).catch((err) => { if (current()) showError(err); });
}

function loaded(img, src) {
  return new Promise((resolve) => { img.onload = img.onerror = resolve; img.src = src; });
}

async function showPath() {
  if (state.selected.length !== 2) return;
  const [a, b] = state.selected, current = newest("path");
  clearError();
  $("path-title").textContent = `row ${a} → row ${b}`;
  try {
    const body = await api("/api/interpolate", { a, b, method: $("path-method").value, steps: $("path-steps").value });
    if (current()) showFrames($("strip"), body, current);
  } catch (err) {
    if (!current()) return;
    $("strip").replaceChildren();   // the frames of other settings would pass for these
    showError(err);
  }
}

async function onMove() {
  $("amount-value").textContent = `${$("amount").value} sd`;
  if (!state.selected.length) return;
  if (state.moveBusy) { state.movePending = true; return; }
  state.moveBusy = true;
  const current = newest("move");   // a click on another code makes this answer stale
  clearError();
  try {
    const row = state.selected[state.selected.length - 1];
    const body = await api("/api/move", { index: row, direction: $("direction").value, amount: $("amount").value });
    if (current()) {
      $("moved").src = body.image;
      $("moved-info").textContent = `${$("amount").value} sd along ${$("direction").value} · ` +
        (body.outside_hull ? "outside the hull of the training codes" : "inside the hull");
    }
  } catch (err) {
    if (current()) showError(err);
  }
  state.moveBusy = false;
  if (state.movePending) { state.movePending = false; onMove(); }
}

// -- mixture components ------------------------------------------------------------------------
async function loadComponents() {
  const name = $("sampler").value;
  newest("sample");   // a draw still on its way is of the sampler shown before
  clearError();
  state.component = null;
  $("samples").replaceChildren();
  const rows = state.mixtures[name].map((c) => {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td>${c.component}</td><td>${c.weight.toFixed(3)}</td><td>${c.variance.toPrecision(3)}</td>`;
    tr.addEventListener("click", () => sampleComponent(c.component, tr));
    return tr;
  });
  $("components").tBodies[0].replaceChildren(...rows);
  $("mixture-status").textContent = `${rows.length} component${rows.length === 1 ? "" : "s"}: click one to sample it`;
}

async function sampleComponent(component, tr) {
  for (const other of $("components").tBodies[0].rows) other.classList.toggle("chosen", other === tr);
  state.component = { component, tr };
  const current = newest("sample");
  clearError();
  try {
    const params = { sampler: $("sampler").value, component, n: 8, seed: $("sample-seed").value };
    const body = await api("/api/sample", params);
    if (current()) showFrames($("samples"), body, current);
  } catch (err) { if (current()) showError(err); }
}

async function loadMixtures(info) {
  try {
    state.mixtures = await api("/api/samplers");
  } catch (err) {   // said in the panel: the map's first answer clears the error line
    $("mixture-status").textContent = `the fitted mixtures could not be read: ${err.message}`;
    return;
  }
  // shown by spec, the mixture of most components first
  const names = [...info.samplers].sort((a, b) => state.mixtures[b].length - state.mixtures[a].length);
  fillSelect($("sampler"), names, names.map((name) => info.sampler_specs[name]));
  loadComponents();
}

// -- start ----------------------------------------------------------------------------------------
async function start() {
  try {
    state.info = await api("/api/info");
  } catch (err) { showError(err); return; }
  const info = state.info;
  $("run-name").textContent = info.run;
  $("run-info").textContent = `${info.family} · codes of ${info.latent_dim} dimensions · images ` +
    `${info.image_shape.join("×")} · ${info.n_codes} codes (${info.n_points} on the map)`;
  fillSelect($("map-method"), info.map_methods);
  fillSelect($("color-by"), info.color_options);
  fillSelect($("path-method"), info.interpolation_methods);
  $("path-method").value = "slerp";
  fillSelect($("direction"), info.directions.map((d) => d.name),
             info.directions.map((d) => `${d.name} (${d.source})`));
  if (!info.samplers.length) {
    $("mixture-status").textContent = "no fitted Gaussian mixture in this run " +
      "(latentatlas sample RUN --sampler gmm:k=10)";
  } else {
    loadMixtures(info);   // beside the map, not before it
  }
  $("map-method").addEventListener("change", loadMap);
  $("color-by").addEventListener("change", loadMap);
  $("path-method").addEventListener("change", showPath);
  $("path-steps").addEventListener("change", showPath);
  $("direction").addEventListener("change", onMove);
  $("amount").addEventListener("input", onMove);
  $("sampler").addEventListener("change", loadComponents);
  $("sample-seed").addEventListener("change", () => {
    if (state.component) sampleComponent(state.component.component, state.component.tr);
  });
  $("overlay").addEventListener("mousemove", onHover);
  $("overlay").addEventListener("mouseleave", () => { state.hover = -1; $("tooltip").hidden = true; drawOverlay(); });
  $("overlay").addEventListener("click", onClick);
  window.addEventListener("resize", drawMap);
  await loadMap();
}

// For scripts and tests: where a row's point is drawn, in CSS pixels from the map's top-left corner.
window.explorer = {
  state,
  screenPosition(row) {
    const i = state.map.index.indexOf(row);
    return i < 0 ? null : { x: state.px[i], y: state.py[i] };
  },
};

start();
