// Tiny inline-SVG line chart for the 24 h history (no library, no build step).
// Colours come from CSS classes, so the night theme restyles it.

const NS = 'http://www.w3.org/2000/svg';
let uid = 0;

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text != null) e.textContent = text;
  return e;
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

// o: {t, v, from, to, yMin?, yMax?, ticks?, minSpan?, fmtY, fmtX, split?, empty, title}
export function lineChart(box, o) {
  const W = Math.max(240, Math.round(box.clientWidth || 600));
  const H = Math.max(120, Math.round(box.clientHeight || 180));
  const fs = H > 200 ? 14 : 12;
  const pad = { l: fs * 4.6, r: 10, t: 10, b: fs * 2 };
  const pw = W - pad.l - pad.r;
  const ph = H - pad.t - pad.b;
  const id = ++uid;

  const pts = [];
  for (let i = 0; i < o.t.length; i++) {
    const v = o.v[i];
    if (o.t[i] >= o.from && o.t[i] <= o.to) pts.push([o.t[i], v == null || !isFinite(v) ? null : v]);
  }
  const vals = pts.filter((p) => p[1] != null).map((p) => p[1]);

  let lo = o.yMin;
  let hi = o.yMax;
  let ticks = o.ticks;
  if (lo == null || hi == null) {
    let a = vals.length ? Math.min(...vals) : 0;
    let b = vals.length ? Math.max(...vals) : 0;
    if (o.split) { a = Math.min(a, 0); b = Math.max(b, 0); }
    const span = o.minSpan || 1; // a flat or empty series still gets a readable scale
    if (b - a < span) { const mid = (a + b) / 2; a = mid - span / 2; b = mid + span / 2; }
    const step = niceStep(b - a, 4);
    lo = Math.floor(a / step) * step;
    hi = Math.ceil(b / step) * step;
    ticks = [];
    for (let y = lo; y <= hi + step / 2; y += step) ticks.push(Math.round(y / step) * step);
  }
  const X = (t) => pad.l + ((t - o.from) / (o.to - o.from)) * pw;
  const Y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * ph;

  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': o.title || '' });
  svg.style.fontSize = fs + 'px';

  // y grid and labels
  for (const y of ticks) {
    const yy = Y(y).toFixed(1);
    svg.append(el('line', { x1: pad.l, x2: W - pad.r, y1: yy, y2: yy, class: y === 0 && o.split ? 'zero' : 'gl' }));
    svg.append(el('text', { x: pad.l - 6, y: yy, 'text-anchor': 'end', 'dominant-baseline': 'middle', class: 'ax' }, o.fmtY(y)));
  }

  // x ticks on whole local hours
  const maxLabels = Math.max(2, Math.floor(pw / (fs * 5.2)));
  const stepH = [1, 2, 3, 4, 6, 8, 12].find((s) => 24 / s <= maxLabels) || 12;
  const d = new Date(o.from * 1000);
  d.setMinutes(0, 0, 0);
  while (d.getTime() / 1000 < o.from || d.getHours() % stepH) d.setHours(d.getHours() + 1);
  for (; d.getTime() / 1000 <= o.to; d.setHours(d.getHours() + stepH)) {
    const x = X(d.getTime() / 1000).toFixed(1);
    svg.append(el('line', { x1: x, x2: x, y1: pad.t, y2: pad.t + ph, class: 'gv' }));
    svg.append(el('text', { x, y: H - fs * 0.5, 'text-anchor': 'middle', class: 'ax' }, o.fmtX(d.getTime() / 1000)));
  }
  svg.append(el('line', { x1: pad.l, x2: W - pad.r, y1: pad.t + ph, y2: pad.t + ph, class: 'axis' }));

  if (!vals.length) {
    svg.append(el('text', { x: pad.l + pw / 2, y: pad.t + ph / 2, 'text-anchor': 'middle', 'dominant-baseline': 'middle', class: 'empty' }, o.empty));
    box.replaceChildren(svg);
    return;
  }

  // split into segments at gaps (missing samples or long pauses)
  const dts = [];
  for (let i = 1; i < pts.length; i++) dts.push(pts[i][0] - pts[i - 1][0]);
  dts.sort((a, b) => a - b);
  const gap = Math.max(600, 3 * (dts[dts.length >> 1] || 300));
  const segs = [];
  let cur = [];
  let prevT = null;
  for (const [t, v] of pts) {
    if (v == null || (prevT != null && t - prevT > gap)) { if (cur.length) segs.push(cur); cur = []; }
    if (v != null) cur.push([X(t), Y(v)]);
    prevT = v == null ? null : t;
  }
  if (cur.length) segs.push(cur);

  const base = o.split ? Y(0) : pad.t + ph;
  let line = '';
  let area = '';
  for (const s of segs) {
    const p = s.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`);
    line += 'M' + p.join('L');
    area += `M${s[0][0].toFixed(1)},${base.toFixed(1)}L${p.join('L')}L${s[s.length - 1][0].toFixed(1)},${base.toFixed(1)}Z`;
  }
  if (o.split) {
    const z = Y(0);
    const defs = el('defs', {});
    const up = el('clipPath', { id: `cu${id}` });
    up.append(el('rect', { x: 0, y: 0, width: W, height: Math.max(0, z) }));
    const dn = el('clipPath', { id: `cd${id}` });
    dn.append(el('rect', { x: 0, y: z, width: W, height: Math.max(0, H - z) }));
    defs.append(up, dn);
    svg.append(defs);
    svg.append(el('path', { d: area, class: 'area pos', 'clip-path': `url(#cu${id})` }));
    svg.append(el('path', { d: area, class: 'area neg', 'clip-path': `url(#cd${id})` }));
  } else {
    svg.append(el('path', { d: area, class: 'area' }));
  }
  svg.append(el('path', { d: line, class: 'line' }));
  const last = segs[segs.length - 1];
  const [lx, ly] = last[last.length - 1];
  svg.append(el('circle', { cx: lx.toFixed(1), cy: ly.toFixed(1), r: 4, class: 'dot' }));
  box.replaceChildren(svg);
}
