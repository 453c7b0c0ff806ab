// Small SVG charts for the overview page (stacked bars per day, a line), drawn from the JSON
// the server embeds in #chart-data. Served from the package: no CDN, works offline.
(() => {
  "use strict";
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f6feb", "#f79009", "#12b76a", "#b42318", "#7a5af8", "#0ba5ec", "#ee46bc", "#667085", "#a15c07"];
  const W = 900, H = 240, PAD = { l: 40, r: 10, t: 10, b: 28 };
  const dataEl = document.getElementById("chart-data");
  if (!dataEl) return;
  const data = JSON.parse(dataEl.textContent);
  const days = data.days;

  function el(name, attrs, text) {
    const node = document.createElementNS(NS, name);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, String(v)));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function frame(max) {
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "presentation" });
    const top = Math.max(1, niceMax(max));
    const y = (v) => H - PAD.b - (v / top) * (H - PAD.t - PAD.b);
    for (let i = 0; i <= 4; i += 1) {
      const v = (top / 4) * i;
      svg.appendChild(el("line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v), stroke: "#eceff2" }));
      svg.appendChild(el("text", { x: PAD.l - 6, y: y(v) + 4, "text-anchor": "end", "font-size": 11, fill: "#6a737d" },
        Number.isInteger(v) ? v : v.toFixed(1)));
    }
    const step = (W - PAD.l - PAD.r) / days.length;
    days.forEach((d, i) => {
      if (i % 5 === 0 || i === days.length - 1) {
        svg.appendChild(el("text", { x: PAD.l + step * (i + 0.5), y: H - 8, "text-anchor": "middle", "font-size": 11, fill: "#6a737d" }, d.slice(5)));
      }
    });
    return { svg, y, step };
  }

  function niceMax(v) {
    if (v <= 4) return 4;
    const p = 10 ** Math.floor(Math.log10(v));
    return [1, 2, 2.5, 5, 10].map((m) => m * p).find((m) => m >= v);
  }

  function legend(names) {
    const div = document.createElement("div");
    div.className = "legend";
    names.forEach((name, i) => {
      const span = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = COLORS[i % COLORS.length];
      span.append(swatch, document.createTextNode(name));
      div.appendChild(span);
    });
    return div;
  }

  function stacked(container, series) {
    const names = Object.keys(series);
    const totals = days.map((_, i) => names.reduce((sum, n) => sum + series[n][i], 0));
    const { svg, y, step } = frame(Math.max(0, ...totals));
    days.forEach((day, i) => {
      let base = 0;
      names.forEach((name, j) => {
        const v = series[name][i];
        if (!v) return;
        const rect = el("rect", { x: PAD.l + step * i + 1, width: Math.max(1, step - 2), y: y(base + v), height: y(base) - y(base + v), fill: COLORS[j % COLORS.length] });
        rect.appendChild(el("title", {}, `${day} ${name}: ${v}`));
        svg.appendChild(rect);
        base += v;
      });
    });
    container.replaceChildren(svg, legend(names));
    if (!names.length) container.appendChild(document.createTextNode("近30天没有案件。"));
  }

  function line(container, values) {
    const { svg, y, step } = frame(Math.max(0, ...values));
    const points = values.map((v, i) => `${PAD.l + step * (i + 0.5)},${y(v)}`).join(" ");
    svg.appendChild(el("polyline", { points, fill: "none", stroke: COLORS[0], "stroke-width": 2 }));
    values.forEach((v, i) => {
      const dot = el("circle", { cx: PAD.l + step * (i + 0.5), cy: y(v), r: 3, fill: COLORS[0] });
      dot.appendChild(el("title", {}, `${days[i]}: ${v}`));
      svg.appendChild(dot);
    });
    container.replaceChildren(svg);
  }

  document.querySelectorAll("[data-chart]").forEach((container) => {
    const series = data[container.dataset.series];
    if (container.dataset.chart === "stack") stacked(container, series);
    else line(container, series);
  });
})();
