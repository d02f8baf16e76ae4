/*
 * A dependency-free 360° viewer for a job's transparent frames.
 *
 *   <div data-spin-viewer data-src="/jobs/<id>/spin.json"></div>
 *   <script src="/static/js/spin-viewer.js" defer></script>
 *
 * spin.json: {width, height, rows: [{elevation, frames: [{azimuth, preview, full}]}],
 *             sprite: {url, columns, tile_width, tile_height, count, row}}
 * The sprite (one image, a few dozen small frames) gives a full first spin at once; small
 * previews then fill in every angle, and full-size frames load near the angle on screen.
 *
 * Gestures: drag sideways to turn, up or down to change rows of elevation; pinch (or the
 * wheel, or +/−) to zoom, and drag to pan while zoomed; double-tap (double-click) to reset.
 */
(function () {
  "use strict";

  const BACKGROUNDS = ["checker", "white", "grey"];
  const BG_LABEL = { checker: "Checkerboard", white: "White", grey: "Grey" };
  const FRICTION = 0.92; // velocity kept per animation frame after a flick
  const DEG_PER_PX = 0.5;
  const AUTOPLAY_DEG_PER_S = 30;
  const FULL_RADIUS = 3; // full-size frames loaded on each side of the current one
  const MAX_ZOOM = 4;
  const ROW_SWIPE_PX = 40; // vertical travel that moves one row
  const DOUBLE_TAP_MS = 300;
  const DOUBLE_TAP_PX = 30;

  // Styles travel with the script, so an embed on a storefront needs nothing else.
  const STYLE = `
.spin-viewer { position: relative; max-width: 100%; border-radius: 8px; overflow: hidden;
  user-select: none; }
.spin-viewer.bg-white { background: #fff; }
.spin-viewer.bg-grey { background: #8a8f98; }
.spin-viewer.bg-checker { background: repeating-conic-gradient(#d9dce1 0% 25%, #fff 0% 50%)
  50% / 24px 24px; }
.spin-viewer:fullscreen { display: flex; flex-direction: column; justify-content: center; }
.spin-canvas { display: block; width: 100%; height: auto; cursor: grab; touch-action: none; }
.spin-canvas:active { cursor: grabbing; }
.spin-canvas:focus-visible { outline: 3px solid #2457d6; outline-offset: -3px; }
.spin-controls { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center;
  padding: .5rem; background: rgb(255 255 255 / 85%); font: 14px system-ui, sans-serif; }
.spin-controls button, .spin-controls a { margin: 0; padding: .3rem .7rem; border: 1px solid #c5cad3;
  border-radius: 6px; background: #fff; color: #1d2330; font: inherit; cursor: pointer;
  text-decoration: none; }
.spin-status { margin-left: auto; color: #555; }`;

  function injectStyle() {
    if (document.getElementById("spin-viewer-style")) return;
    const style = document.createElement("style");
    style.id = "spin-viewer-style";
    style.textContent = STYLE;
    document.head.append(style);
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text) node.textContent = text;
    return node;
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.decoding = "async";
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("could not load " + url));
      img.src = url;
    });
  }

  class SpinViewer {
    constructor(root, spin) {
      this.root = root;
      this.spin = spin;
      this.row = Math.min(spin.sprite ? spin.sprite.row || 0 : 0, spin.rows.length - 1);
      this.angle = 0; // degrees, continuous
      this.velocity = 0;
      this.zoom = 1;
      this.pan = { x: 0, y: 0 }; // canvas pixels the zoomed picture is moved by
      this.autoplay = false;
      this.bgIndex = 0;
      // Per row, per frame: the best image loaded so far and its quality (1 preview, 2 full).
      this.images = spin.rows.map((r) => r.frames.map(() => null));
      this.quality = spin.rows.map((r) => r.frames.map(() => 0));
      this.loading = new Set();
      this.sprite = null;
      this.build();
      this.bind();
      this.start();
    }

    build() {
      const r = this.root;
      r.classList.add("spin-viewer", "bg-" + BACKGROUNDS[0]);
      r.setAttribute("role", "group");
      r.setAttribute("aria-label", "360° view");
      this.canvas = el("canvas", {
        class: "spin-canvas",
        tabindex: "0",
        role: "img",
        "aria-label": "360° view. Drag, or use the arrow keys, to turn the product; pinch or " +
          "+/− to zoom.",
      });
      this.canvas.width = this.spin.width;
      this.canvas.height = this.spin.height;
      this.ctx = this.canvas.getContext("2d");
      const bar = el("div", { class: "spin-controls", role: "toolbar", "aria-label": "Viewer controls" });
      this.playButton = el("button", { type: "button", "aria-pressed": "false", "data-action": "play" }, "Play");
      const zoomIn = el("button", { type: "button", "aria-label": "Zoom in", "data-action": "zoom-in" }, "+");
      const zoomOut = el("button", { type: "button", "aria-label": "Zoom out", "data-action": "zoom-out" }, "−");
      this.bgButton = el("button", { type: "button", "data-action": "background" });
      const full = el("button", { type: "button", "data-action": "fullscreen" }, "Fullscreen");
      // A browser downloads only same-origin links; a frame from another origin (this
      // site, seen from a storefront, or a bucket) opens in a new tab instead of replacing
      // the shop's page.
      this.download = el("a", { class: "button", "data-action": "download", download: "",
                                 target: "_blank", rel: "noopener" }, "Download this frame");
      this.status = el("span", { class: "spin-status", "aria-live": "polite" });
      bar.append(this.playButton, zoomOut, zoomIn, this.bgButton, full, this.download, this.status);
      r.replaceChildren(this.canvas, bar);
      this.updateBackgroundLabel();
    }

    // Client pixels to canvas pixels (the canvas is scaled to its box by CSS).
    toCanvas(x, y) {
      const box = this.canvas.getBoundingClientRect();
      const s = this.canvas.width / Math.max(box.width, 1);
      return { x: (x - box.left) * s, y: (y - box.top) * s };
    }

    bind() {
      const c = this.canvas;
      const pointers = new Map(); // pointerId → {x, y} in client pixels
      let last = null; // the one-finger (or mouse) drag
      let pinch = null; // the two-finger gesture
      let lastTime = 0;
      let touch = null; // the current touch, while it may still be a tap
      let lastTap = { time: 0, x: 0, y: 0 }; // when and where the last tap ended

      const startDrag = (p) => { last = { x: p.x, y: p.y, dy: 0 }; lastTime = performance.now(); };
      const startPinch = () => {
        const [a, b] = [...pointers.values()];
        const mid = this.toCanvas((a.x + b.x) / 2, (a.y + b.y) / 2);
        pinch = { dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, zoom: this.zoom,
          // the picture's point under the fingers, in unzoomed canvas pixels
          u: this.fromView(mid) };
        last = null;
      };

      c.addEventListener("pointerdown", (e) => {
        c.setPointerCapture(e.pointerId);
        pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
        this.velocity = 0;
        this.setAutoplay(false);
        touch = null;
        if (pointers.size === 2) return startPinch();
        if (pointers.size > 2) return;
        startDrag({ x: e.clientX, y: e.clientY });
        if (e.pointerType === "mouse") return; // a mouse has dblclick
        const now = performance.now();
        if (now - lastTap.time < DOUBLE_TAP_MS &&
            Math.hypot(e.clientX - lastTap.x, e.clientY - lastTap.y) < DOUBLE_TAP_PX) {
          this.resetView();
          lastTap = { time: 0, x: 0, y: 0 };
        } else {
          touch = { time: now, x: e.clientX, y: e.clientY };
        }
      });
      c.addEventListener("pointermove", (e) => {
        if (!pointers.has(e.pointerId)) return;
        pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
        if (pinch && pointers.size >= 2) {
          const [a, b] = [...pointers.values()];
          const dist = Math.hypot(a.x - b.x, a.y - b.y);
          this.setZoom(pinch.zoom * dist / pinch.dist,
                       this.toCanvas((a.x + b.x) / 2, (a.y + b.y) / 2), pinch.u);
          return;
        }
        if (!last) return;
        const now = performance.now();
        const dx = e.clientX - last.x;
        const dy = e.clientY - last.y;
        if (this.zoom > 1) {
          // Zoomed in, a drag looks around the picture instead of turning it.
          const s = c.width / Math.max(c.getBoundingClientRect().width, 1);
          this.panBy(dx * s, dy * s);
        } else {
          this.turn(-dx * DEG_PER_PX);
          this.velocity = (-dx * DEG_PER_PX) / Math.max(now - lastTime, 1) * 16;
          // A vertical drag (a swipe on a touch screen) moves between rows of elevations.
          last.dy += dy;
          if (Math.abs(last.dy) > ROW_SWIPE_PX && this.spin.rows.length > 1) {
            this.setRow(this.row + (last.dy > 0 ? 1 : -1));
            last.dy = 0;
          }
        }
        last.x = e.clientX;
        last.y = e.clientY;
        lastTime = now;
      });
      const end = (e) => {
        pointers.delete(e.pointerId);
        // A short touch that did not travel is a tap; two close together reset the view.
        const now = performance.now();
        if (touch && pointers.size === 0 && now - touch.time < DOUBLE_TAP_MS &&
            Math.hypot(e.clientX - touch.x, e.clientY - touch.y) < DOUBLE_TAP_PX / 3) {
          lastTap = { time: now, x: e.clientX, y: e.clientY };
        }
        touch = null;
        if (pointers.size < 2) pinch = null;
        // One finger left after a pinch carries on as a drag from where it is.
        if (pointers.size === 1) startDrag([...pointers.values()][0]);
        else last = null;
      };
      c.addEventListener("pointerup", end);
      c.addEventListener("pointercancel", end);
      c.addEventListener("dblclick", () => this.resetView());
      c.addEventListener("wheel", (e) => {
        e.preventDefault();
        const at = this.toCanvas(e.clientX, e.clientY); // zoom around the pointer
        this.setZoom(this.zoom * (e.deltaY < 0 ? 1.1 : 1 / 1.1), at, this.fromView(at));
      }, { passive: false });
      c.addEventListener("keydown", (e) => {
        const step = 360 / this.frames().length;
        const actions = {
          ArrowLeft: () => this.turn(-step),
          ArrowRight: () => this.turn(step),
          ArrowUp: () => this.setRow(this.row - 1),
          ArrowDown: () => this.setRow(this.row + 1),
          "+": () => this.setZoom(this.zoom * 1.25),
          "-": () => this.setZoom(this.zoom / 1.25),
          "0": () => this.resetView(),
          " ": () => this.setAutoplay(!this.autoplay),
        };
        if (actions[e.key]) {
          e.preventDefault();
          this.setAutoplay(e.key === " " ? this.autoplay : false);
          actions[e.key]();
        }
      });
      this.root.querySelector(".spin-controls").addEventListener("click", (e) => {
        const action = e.target.closest("[data-action]")?.dataset.action;
        if (action === "play") this.setAutoplay(!this.autoplay);
        if (action === "zoom-in") this.setZoom(this.zoom * 1.25);
        if (action === "zoom-out") this.setZoom(this.zoom / 1.25);
        if (action === "background") this.cycleBackground();
        if (action === "fullscreen") this.toggleFullscreen();
      });
    }

    frames() {
      return this.spin.rows[this.row].frames;
    }

    index() {
      const n = this.frames().length;
      return ((Math.round(this.angle / (360 / n)) % n) + n) % n;
    }

    turn(deg) {
      this.angle = (this.angle + deg + 360) % 360;
      this.draw();
    }

    setRow(row) {
      const clamped = Math.max(0, Math.min(this.spin.rows.length - 1, row));
      if (clamped !== this.row) {
        this.row = clamped;
        this.draw();
      }
    }

    // Zoom to z. With `at` (a canvas point) and `u` (the picture's point, unzoomed, that
    // should stay under it), the picture zooms around the fingers; else around its centre.
    setZoom(z, at, u) {
      const { width, height } = this.canvas;
      const before = this.zoom;
      this.zoom = Math.max(1, Math.min(MAX_ZOOM, z));
      if (at && u) {
        this.pan.x = at.x - u.x * this.zoom - (width - width * this.zoom) / 2;
        this.pan.y = at.y - u.y * this.zoom - (height - height * this.zoom) / 2;
      } else {
        this.pan.x *= this.zoom / before;
        this.pan.y *= this.zoom / before;
      }
      this.panBy(0, 0);
    }

    // The unzoomed canvas point shown at canvas point p.
    fromView(p) {
      const { width, height } = this.canvas;
      return { x: (p.x - (width - width * this.zoom) / 2 - this.pan.x) / this.zoom,
               y: (p.y - (height - height * this.zoom) / 2 - this.pan.y) / this.zoom };
    }

    // Move the zoomed picture, never so far that an edge comes inside the view.
    panBy(dx, dy) {
      const { width, height } = this.canvas;
      const mx = (width * this.zoom - width) / 2;
      const my = (height * this.zoom - height) / 2;
      this.pan.x = Math.max(-mx, Math.min(mx, this.pan.x + dx));
      this.pan.y = Math.max(-my, Math.min(my, this.pan.y + dy));
      this.draw();
    }

    resetView() {
      this.zoom = 1;
      this.pan = { x: 0, y: 0 };
      this.draw();
    }

    setAutoplay(on) {
      this.autoplay = on;
      this.playButton.textContent = on ? "Pause" : "Play";
      this.playButton.setAttribute("aria-pressed", String(on));
    }

    cycleBackground() {
      this.root.classList.remove("bg-" + BACKGROUNDS[this.bgIndex]);
      this.bgIndex = (this.bgIndex + 1) % BACKGROUNDS.length;
      this.root.classList.add("bg-" + BACKGROUNDS[this.bgIndex]);
      this.root.dataset.background = BACKGROUNDS[this.bgIndex];
      this.updateBackgroundLabel();
    }

    updateBackgroundLabel() {
      const next = BACKGROUNDS[(this.bgIndex + 1) % BACKGROUNDS.length];
      this.root.dataset.background = BACKGROUNDS[this.bgIndex];
      this.bgButton.textContent = "Background: " + BG_LABEL[BACKGROUNDS[this.bgIndex]];
      this.bgButton.setAttribute("aria-label", "Switch the background to " + BG_LABEL[next].toLowerCase());
    }

    toggleFullscreen() {
      if (document.fullscreenElement) document.exitFullscreen();
      else this.root.requestFullscreen?.();
    }

    // The best source on hand for frame i of the current row: a loaded frame, else the
    // nearest sprite tile.
    source(i) {
      const img = this.images[this.row][i];
      if (img) return { img, sx: 0, sy: 0, sw: img.naturalWidth, sh: img.naturalHeight };
      const s = this.spin.sprite;
      if (!this.sprite || s.row !== this.row) return null;
      const n = this.frames().length;
      const tile = Math.round((i / n) * s.count) % s.count;
      return {
        img: this.sprite,
        sx: (tile % s.columns) * s.tile_width,
        sy: Math.floor(tile / s.columns) * s.tile_height,
        sw: s.tile_width,
        sh: s.tile_height,
      };
    }

    draw() {
      const i = this.index();
      const src = this.source(i);
      const { width, height } = this.canvas;
      this.ctx.clearRect(0, 0, width, height);
      if (src) {
        const w = width * this.zoom;
        const h = height * this.zoom;
        this.ctx.drawImage(src.img, src.sx, src.sy, src.sw, src.sh,
          (width - w) / 2 + this.pan.x, (height - h) / 2 + this.pan.y, w, h);
      }
      const frame = this.frames()[i];
      this.canvas.dataset.frame = String(i);
      this.canvas.dataset.row = String(this.row);
      this.canvas.dataset.zoom = this.zoom.toFixed(2);
      this.canvas.dataset.pan = `${Math.round(this.pan.x)},${Math.round(this.pan.y)}`;
      this.download.href = frame.full;
      const elev = this.spin.rows[this.row].elevation;
      this.canvas.setAttribute(
        "aria-label",
        `360° view, frame ${i + 1} of ${this.frames().length}, azimuth ${Math.round(frame.azimuth)}°` +
          (this.spin.rows.length > 1 ? `, elevation ${Math.round(elev)}°` : "") +
          ". Drag, or use the arrow keys, to turn the product."
      );
      this.status.textContent = `${Math.round(frame.azimuth)}°`;
      this.want(i);
    }

    // Ask for the frames near i: previews first, full size when zoomed or at rest.
    want(i) {
      const n = this.frames().length;
      for (let d = -FULL_RADIUS; d <= FULL_RADIUS; d++) {
        const j = (i + d + n) % n;
        this.fetch(this.row, j, Math.abs(this.velocity) < 0.5 && !this.autoplay ? 2 : 1);
      }
    }

    fetch(row, i, quality) {
      const key = row + ":" + i + ":" + quality;
      if (this.quality[row][i] >= quality || this.loading.has(key)) return;
      const frame = this.spin.rows[row].frames[i];
      const url = quality === 2 ? frame.full : frame.preview;
      if (!url) return;
      this.loading.add(key);
      loadImage(url)
        .then((img) => {
          if (this.quality[row][i] < quality) {
            this.images[row][i] = img;
            this.quality[row][i] = quality;
            if (row === this.row && i === this.index()) this.draw();
          }
        })
        .catch(() => {})
        .finally(() => this.loading.delete(key));
    }

    // Previews for the whole current row, a few at a time, nearest to the view first.
    async preloadPreviews() {
      for (let row = 0; row < this.spin.rows.length; row++) {
        const n = this.spin.rows[row].frames.length;
        const order = [...Array(n).keys()].sort(
          (a, b) => Math.min(Math.abs(a - this.index()), n - Math.abs(a - this.index())) -
            Math.min(Math.abs(b - this.index()), n - Math.abs(b - this.index()))
        );
        for (let k = 0; k < order.length; k += 8) {
          await Promise.all(order.slice(k, k + 8).map((i) => {
            const frame = this.spin.rows[row].frames[i];
            if (!frame.preview || this.quality[row][i] >= 1) return null;
            return loadImage(frame.preview).then((img) => {
              if (this.quality[row][i] < 1) {
                this.images[row][i] = img;
                this.quality[row][i] = 1;
              }
            }).catch(() => {});
          }));
        }
      }
      this.root.dataset.previewsLoaded = "true";
    }

    start() {
      const s = this.spin.sprite;
      const ready = s
        ? loadImage(s.url).then((img) => { this.sprite = img; }).catch(() => {})
        : Promise.resolve();
      ready.then(() => {
        this.draw();
        this.root.dataset.ready = "true";
        this.preloadPreviews();
      });
      let previous = performance.now();
      const tick = (now) => {
        const dt = (now - previous) / 1000;
        previous = now;
        if (this.autoplay) {
          this.turn(AUTOPLAY_DEG_PER_S * dt);
        } else if (Math.abs(this.velocity) > 0.05) {
          this.turn(this.velocity);
          this.velocity *= FRICTION;
        }
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    }
  }

  async function init(root) {
    if (root.spinViewer) return root.spinViewer;
    injectStyle();
    const response = await fetch(root.dataset.src, { credentials: "same-origin" });
    if (!response.ok) {
      root.textContent = "The 360° view could not be loaded.";
      return null;
    }
    root.spinViewer = new SpinViewer(root, resolveUrls(await response.json(), response.url));
    return root.spinViewer;
  }

  // URLs in spin.json are relative to spin.json itself, not to the page that embeds it
  // (a storefront on another domain); the site sends full URLs, this keeps others working.
  function resolveUrls(spin, base) {
    const full = (url) => (url ? new URL(url, base).href : url);
    for (const row of spin.rows) {
      for (const frame of row.frames) {
        frame.preview = full(frame.preview);
        frame.full = full(frame.full);
      }
    }
    if (spin.sprite) spin.sprite.url = full(spin.sprite.url);
    spin.downloads = (spin.downloads || []).map(full);
    return spin;
  }

  function initAll() {
    document.querySelectorAll("[data-spin-viewer]").forEach(init);
  }

  window.SpinViewer = { init, initAll };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", initAll);
  else initAll();
})();
