// lion review: the slice viewer of a card (NiiVue, vendored; loaded when the first viewer opens).
// A case's volumes come from images/<case>/volumes.js, a script calling lionVolumes(id, {name:
// base64 of a .nii.gz}), so the viewer works from disk (file://) as well as served. Served by
// `lion review --serve` with the prediction folder, the viewer also corrects: tumor and
// background clicks go to api/cases/<id>/clicks (voxel indices i, j, k of the PET NIfTI, as in
// the click files), brush and eraser strokes are sent whole to api/cases/<id>/mask (gzip'd uint8
// voxels, i fastest), and the overlay shows the server's mask after each edit.
"use strict";
window.LionViewer = (function () {
  const SUV_WINDOW = [0, 10];
  const MODES = [  // [mode, key, label, title]
    ["view", "v", "look", "click moves the crosshair; nothing is changed (v)"],
    ["tumor", "t", "tumor click", "a click adds the tumor under it (t)"],
    ["background", "b", "background click", "a click removes the tumor under it (b)"],
    ["brush", "d", "brush", "drag to paint tumor voxels (d)"],
    ["eraser", "e", "eraser", "drag to erase tumor voxels (e)"],
  ];
  const TRUTH_LUT = { R: [0, 40, 255], G: [0, 220, 220], B: [0, 40, 0], A: [0, 255, 255], I: [0, 1, 2],
                      labels: ["", "true lesion found (outline)", "true lesion missed"] };
  let library = null;   // the promise of NiiVue's script
  const waiting = {};   // case id -> resolve of its volumes.js
  let current = null;   // the open viewer

  window.lionVolumes = function (id, data) {
    if (waiting[id]) { waiting[id](data); delete waiting[id]; }
  };

  function script(src) {
    return new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = src;
      s.onload = () => resolve();
      s.onerror = () => reject(new Error("cannot load " + src));
      document.head.appendChild(s);
    });
  }
  function loadLibrary(src) {
    if (!library) library = script(src).then(() => window.niivue);
    return library;
  }
  function loadVolumes(id, src) {
    return new Promise((resolve, reject) => {
      waiting[id] = resolve;
      script(src).catch(reject);
    });
  }
  function bytes(b64) {
    const text = atob(b64);
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out.buffer;
  }
  async function gunzip(buffer) {
    const stream = new Blob([buffer]).stream().pipeThrough(new DecompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  async function gzip(array) {
    const stream = new Blob([array]).stream().pipeThrough(new CompressionStream("gzip"));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }
  function labelLut(n) {  // n organ labels, distinct colours, background transparent
    const lut = { R: [0], G: [0], B: [0], A: [0], I: [0] };
    for (let i = 1; i <= n; i++) {
      const h = (i * 137.508) % 360, s = 0.75, l = 0.55;  // golden-angle hues
      const f = (k) => { const a = s * Math.min(l, 1 - l), m = (k + h / 30) % 12;
                         return Math.round(255 * (l - a * Math.max(-1, Math.min(m - 3, 9 - m, 1)))); };
      lut.R.push(f(0)); lut.G.push(f(8)); lut.B.push(f(4)); lut.A.push(255); lut.I.push(i);
    }
    return lut;
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // NiiVue's drawing bitmap is in RAS voxel order; the files and the API are in the NIfTI's own
  // order (i fastest). back.img2RASstart/step give the native index of each RAS voxel.
  function rasIndexer(back) {
    const d = back.dimsRAS, start = back.img2RASstart, step = back.img2RASstep;
    return function (visit) {
      let r = 0;
      for (let z = 0; z < d[3]; z++) {
        const zi = start[2] + z * step[2];
        for (let y = 0; y < d[2]; y++) {
          const yi = start[1] + y * step[1];
          for (let x = 0; x < d[1]; x++) visit(r++, start[0] + x * step[0] + yi + zi);
        }
      }
    };
  }
  function nativeToRas(back, native) {
    const out = new Uint8Array(native.length);
    rasIndexer(back)((r, n) => { out[r] = native[n] ? 1 : 0; });
    return out;
  }
  function rasToNative(back, ras) {
    const out = new Uint8Array(ras.length);
    rasIndexer(back)((r, n) => { out[n] = ras[r] ? 1 : 0; });
    return out;
  }
  function nativeVoxel(back, rasVox) {  // [i, j, k] of the NIfTI of a RAS voxel
    const d = back.dimsRAS, start = back.img2RASstart, step = back.img2RASstep;
    const v = [0, 1, 2].map((a) => Math.max(0, Math.min(d[a + 1] - 1, Math.round(rasVox[a]))));
    const n = start[0] + v[0] * step[0] + start[1] + v[1] * step[1] + start[2] + v[2] * step[2];
    const nx = back.hdr.dims[1], ny = back.hdr.dims[2];
    return [n % nx, Math.floor(n / nx) % ny, Math.floor(n / (nx * ny))];
  }

  class Viewer {
    constructor(c, host, options) {
      this.c = c;
      this.options = options;  // {served, headers, reviewer(), vendor, onSaved(result)}
      this.undo = [];
      this.mode = "view";
      this.busy = false;
      this.node = el("div", { class: "viewer", tabindex: "0", "data-case-id": c.case_id, "data-state": "loading" });
      const bar = el("div", { class: "viewer-bar" });
      this.low = el("input", { type: "number", step: "0.5", value: String(SUV_WINDOW[0]), title: "SUV shown black" });
      this.high = el("input", { type: "number", step: "0.5", value: String(SUV_WINDOW[1]), title: "SUV shown white" });
      const win = el("label", { class: "window" }, "SUV ");
      win.append(this.low, " to ", this.high);
      bar.appendChild(win);
      this.organs = el("input", { type: "checkbox", class: "show-organs" });
      const organs = el("label", { title: "organ labels (organs.nii.gz)" });
      organs.append(this.organs, " organs");
      this.truth = el("input", { type: "checkbox", class: "show-truth", checked: "" });
      const truth = el("label", { title: "ground truth: outline of each true lesion found, yellow where one was missed" });
      truth.append(this.truth, " truth");
      bar.append(organs, truth);
      this.tools = el("span", { class: "tools", hidden: "" });
      this.modeButtons = {};
      for (const [mode, key, label, title] of MODES) {
        const b = el("button", { type: "button", class: "mode", "data-mode": mode, title, "aria-pressed": String(mode === "view") }, label + " (" + key + ")");
        b.addEventListener("click", () => this.setMode(mode));
        this.modeButtons[mode] = b;
        this.tools.appendChild(b);
      }
      this.pen = el("input", { type: "number", min: "1", max: "15", value: "3", class: "pen", title: "brush size (voxels)" });
      const pen = el("label", {}, " size ");
      pen.appendChild(this.pen);
      this.undoButton = el("button", { type: "button", class: "undo", title: "undo the last edit (z)", disabled: "" }, "undo (z)");
      this.undoButton.addEventListener("click", () => this.undoLast());
      this.tools.append(pen, this.undoButton);
      bar.appendChild(this.tools);
      const close = el("button", { type: "button", class: "close", title: "close the viewer" }, "close");
      close.addEventListener("click", () => close_());
      bar.appendChild(close);
      this.status = el("span", { class: "viewer-status" }, "loading...");
      bar.appendChild(this.status);
      this.canvas = el("canvas", { class: "viewer-canvas", tabindex: "0" });
      const frame = el("div", { class: "viewer-frame" });
      frame.appendChild(this.canvas);
      this.where = el("div", { class: "viewer-where" });
      this.node.append(bar, frame, this.where);
      host.appendChild(this.node);
      this.node.addEventListener("keydown", (e) => this.key(e));
    }

    say(text, error) {
      this.status.textContent = text;
      this.status.className = "viewer-status" + (error ? " error" : "");
    }

    async load() {
      const lib = await loadLibrary(this.options.vendor);
      const data = await loadVolumes(this.c.case_id, this.c.volumes);
      const nv = new lib.Niivue({
        backColor: [0, 0, 0, 1], crosshairColor: [0.1, 0.7, 1, 1], show3Dcrosshair: true, crosshairGap: 12,
        multiplanarForceRender: true, isColorbar: false, dragAndDropEnabled: false,
        viewModeHotKey: "Unused", clipPlaneHotKey: "Unused", cycleClipPlaneHotKey: "Unused",
        isRadiologicalConvention: true, logLevel: "error",  // patient right on the left, as the MIPs
      });
      this.nv = nv;
      await nv.attachToCanvas(this.canvas);
      nv.setSliceType(nv.sliceTypeMultiplanar);
      const pet = await lib.NVImage.loadFromUrl({ url: bytes(data.pet), name: "pet.nii.gz", colormap: "gray",
                                                  cal_min: SUV_WINDOW[0], cal_max: SUV_WINDOW[1], trustCalMinMax: true });
      pet.cal_min = SUV_WINDOW[0];
      pet.cal_max = SUV_WINDOW[1];
      nv.addVolume(pet);
      this.pet = pet;
      if (data.organs) {
        const organs = await lib.NVImage.loadFromUrl({ url: bytes(data.organs), name: "organs.nii.gz", opacity: 0 });
        organs.setColormapLabel(labelLut(Math.max(1, Math.round(organs.global_max || organs.cal_max || 1))));
        nv.addVolume(organs);
        this.organVolume = organs;
      } else this.organs.parentNode.hidden = true;
      if (data.gt) {
        const gt = await lib.NVImage.loadFromUrl({ url: bytes(data.gt), name: "truth.nii.gz", opacity: 1 });
        gt.setColormapLabel(TRUTH_LUT);
        nv.addVolume(gt);
        this.truthVolume = gt;
      } else this.truth.parentNode.hidden = true;
      const tumor = await lib.NVImage.loadFromUrl({ url: bytes(data.tumor), name: "tumor.nii.gz" });
      let mask = Uint8Array.from(tumor.img, (v) => (v > 0 ? 1 : 0));  // native order
      this.editable = false;
      if (this.options.served) {  // the server's current mask: corrections made since the build
        const answer = await fetch("api/cases/" + encodeURIComponent(this.c.case_id) + "/mask", { headers: this.options.headers }).catch(() => null);
        if (answer && answer.ok) {
          mask = await gunzip(await answer.arrayBuffer());
          this.editable = true;
          if (answer.headers.get("X-Lion-Corrected") === "true") this.node.dataset.corrected = "true";
        }
      }
      nv.setDrawOpacity(0.7);
      nv.createEmptyDrawing();
      this.show(mask);
      nv.setDrawingEnabled(false);
      nv.onMouseUp = () => this.clicked();
      nv.onDrawingChanged = (action) => {
        if (action !== "draw") return;
        // NiiVue 0.69 paints a drag as lines from each new point back to the one before,
        // leaving out the new point itself: the voxel under the pointer at release is painted here
        const end = nv.drawPenLocation;
        if (end && !isNaN(end[0])) { nv.drawPt(end[0], end[1], end[2], nv.opts.penValue); nv.refreshDrawing(false); }
        this.stroke();
      };
      nv.onLocationChange = (where) => { this.where.textContent = where && where.string ? where.string : ""; };
      this.low.addEventListener("change", () => this.window());
      this.high.addEventListener("change", () => this.window());
      this.organs.addEventListener("change", () => this.overlays());
      this.truth.addEventListener("change", () => this.overlays());
      this.pen.addEventListener("change", () => { nv.opts.penSize = Math.max(1, +this.pen.value || 1); });
      nv.opts.penSize = 3;
      this.tools.hidden = !this.editable;
      this.node.dataset.state = "ready";
      this.say(this.editable ? "v look, t tumor click, b background click, d brush, e eraser, z undo"
                             : this.options.served ? "read-only: serve with --pred to correct" : "opened from disk: read-only");
    }

    show(native) {  // the mask (native order) as the drawing layer
      this.mask = native;
      this.nv.drawBitmap = nativeToRas(this.nv.back, native);
      this.nv.refreshDrawing(true);
      this.nv.drawScene();
    }

    window() {
      this.pet.cal_min = +this.low.value;
      this.pet.cal_max = +this.high.value;
      this.nv.updateGLVolume();
    }

    overlays() {
      const vols = this.nv.volumes;
      if (this.organVolume) this.nv.setOpacity(vols.indexOf(this.organVolume), this.organs.checked ? 0.35 : 0);
      if (this.truthVolume) this.nv.setOpacity(vols.indexOf(this.truthVolume), this.truth.checked ? 1 : 0);
    }

    setMode(mode) {
      if (!this.editable) return;
      this.mode = mode;
      for (const [m, b] of Object.entries(this.modeButtons)) b.setAttribute("aria-pressed", String(m === mode));
      const drawing = mode === "brush" || mode === "eraser";
      this.nv.setDrawingEnabled(drawing);
      if (drawing) this.nv.setPenValue(mode === "brush" ? 1 : 0, false);
      this.node.dataset.mode = mode;
    }

    key(e) {
      if (e.target.tagName === "INPUT" || e.ctrlKey && e.key !== "z" || e.metaKey || e.altKey) return;
      if (e.key === "z") { this.undoLast(); e.preventDefault(); return; }
      const m = MODES.find((x) => x[1] === e.key);
      if (m) { this.setMode(m[0]); e.preventDefault(); }
    }

    lesion(centroidLps) {  // move the crosshair to a point (LPS mm, report.json's centroid_mm)
      const ras = [-centroidLps[0], -centroidLps[1], centroidLps[2]];
      this.nv.scene.crosshairPos = this.nv.mm2frac(ras);
      this.nv.createOnLocationChange();
      this.nv.drawScene();
    }

    crosshairVoxel() {  // [i, j, k] of the NIfTI under the crosshair
      return nativeVoxel(this.nv.back, this.nv.frac2vox(this.nv.scene.crosshairPos));
    }

    async clicked() {
      if (this.mode !== "tumor" && this.mode !== "background") return;
      const point = this.crosshairVoxel();
      const body = this.mode === "tumor" ? { tumor: [point], background: [] } : { tumor: [], background: [point] };
      await this.save("clicks", JSON.stringify(body), "application/json", this.mode + " click at " + point.join(", "));
    }

    async stroke() {
      if (this.mode !== "brush" && this.mode !== "eraser") return;
      const edited = rasToNative(this.nv.back, this.nv.drawBitmap);
      await this.save("mask", await gzip(edited), "application/gzip", this.mode + " stroke", edited);
    }

    async undoLast() {
      if (!this.editable || !this.undo.length || this.busy) return;
      const previous = this.undo.pop();
      await this.save("mask", await gzip(previous), "application/gzip", "undo", previous, true);
    }

    async save(kind, body, type, what, shown, isUndo) {
      if (this.busy) { this.say("busy: wait for the last edit", true); return; }
      this.busy = true;
      this.node.dataset.state = "saving";
      const before = this.mask;
      const url = "api/cases/" + encodeURIComponent(this.c.case_id) + "/" + kind;
      try {
        const answer = await fetch(url, { method: "POST", body, headers: Object.assign(
          { "Content-Type": type, "X-Lion-Reviewer": this.options.reviewer() }, this.options.headers) });
        const result = await answer.json();
        if (!answer.ok) throw new Error(result.error || answer.statusText);
        let mask = shown;
        if (!mask) {  // clicks: the server's refined mask
          const got = await fetch("api/cases/" + encodeURIComponent(this.c.case_id) + "/mask", { headers: this.options.headers });
          if (!got.ok) throw new Error("mask not read back: " + got.statusText);
          mask = await gunzip(await got.arrayBuffer());
        }
        if (!isUndo) this.undo.push(before);
        this.show(mask);
        this.node.dataset.corrected = "true";
        this.node.dataset.edits = String(result.edits);
        this.say(what + ": saved; TMTV " + Number(result.tmtv_ml).toFixed(1) + " ml, " + result.lesion_count + " lesion(s)");
        this.options.onSaved(result);
      } catch (e) {
        this.show(before);  // the overlay shows what the server holds
        this.say(what + ": NOT saved (" + e.message + ")", true);
      } finally {
        this.undoButton.disabled = !this.undo.length;
        this.busy = false;
        this.node.dataset.state = "ready";
      }
    }

    destroy() {
      try {
        const gl = this.nv && this.nv.gl;
        const lose = gl && gl.getExtension("WEBGL_lose_context");
        if (lose) lose.loseContext();
      } catch (e) { /* the context is going anyway */ }
      this.node.remove();
    }
  }

  function close_() {
    if (current) current.destroy();
    current = null;
    if (location.hash.startsWith("#view=")) history.replaceState(null, "", location.pathname + location.search);
  }

  function open(c, host, options) {  // one viewer at a time: WebGL contexts are few
    if (current && current.c.case_id === c.case_id) return current.ready;
    close_();
    const viewer = new Viewer(c, host, options);
    current = viewer;
    history.replaceState(null, "", location.pathname + location.search + "#view=" + encodeURIComponent(c.case_id));
    viewer.ready = viewer.load().catch((e) => {
      viewer.node.dataset.state = "error";
      viewer.say("viewer failed: " + e.message, true);
    }).then(() => viewer);
    return viewer.ready;
  }

  return { open, close: close_, current: () => current };
})();
