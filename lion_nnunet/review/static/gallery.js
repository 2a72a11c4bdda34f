// lion review: renders the cards from the JSON blob in #gallery-data; no libraries, no network
// except, when the page is served by `lion review --serve`, requests to its own api/ carrying the
// server's token (from this page's address, ?token=...) in the X-Lion-Token header.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("gallery-data").textContent);
  const SERVED = location.protocol === "http:" || location.protocol === "https:";
  const TOKEN = new URLSearchParams(location.search).get("token") || "";
  const API_HEADERS = { "X-Lion-Token": TOKEN };
  const STORE = "lion-review:" + DATA.gallery_id;
  const COLUMNS = ["case_id", "decision", "comment", "reviewer", "timestamp", "lesions"];
  const reviews = Object.assign({}, DATA.reviews);
  const cards = {};
  const $ = (id) => document.getElementById(id);

  function fmt(value, digits) {
    return value === null || value === undefined ? "n/a" : Number(value).toFixed(digits);
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Every decision carries its timestamp (UTC, ISO 8601): the browser's clock for one made
  // here, the server's for one in reviews.csv. Where two meet, the newer one is kept.
  function when(row) {
    const t = Date.parse((row && row.timestamp) || "");
    return isNaN(t) ? -Infinity : t;
  }
  function newer(row, than) {  // ties go to `than`: the one already shown
    return !than || when(row) > when(than);
  }

  function loadLocal() {  // decisions made on this computer since the page was built
    try {
      const saved = JSON.parse(localStorage.getItem(STORE) || "{}");
      for (const [id, row] of Object.entries(saved)) {
        if (newer(row, reviews[id])) reviews[id] = row;
      }
    } catch (e) { /* storage unavailable (private window): the page still works */ }
  }
  function saveLocal() {
    try { localStorage.setItem(STORE, JSON.stringify(reviews)); } catch (e) { /* see above */ }
  }
  function status(text, error) {
    const s = $("status");
    s.textContent = text;
    s.className = error ? "error" : "";
  }

  function lesionDecisions(id) {  // {lesion id: "accept" | "reject"} of the case's review
    const out = {};
    for (const item of ((reviews[id] || {}).lesions || "").split(" ")) {
      const [k, v] = item.split(":");
      if (k && v) out[k] = v;
    }
    return out;
  }
  function lesionsText(decisions) {
    return Object.keys(decisions).sort((a, b) => a - b).map((k) => k + ":" + decisions[k]).join(" ");
  }
  function showLesions(id) {
    const k = cards[id];
    const decisions = lesionDecisions(id);
    for (const tr of k.node.querySelectorAll("tr[data-lesion-id]")) {
      const d = decisions[tr.dataset.lesionId] || "";
      tr.dataset.decision = d;
      for (const b of tr.querySelectorAll("button")) b.setAttribute("aria-pressed", String(b.value === d));
    }
  }
  function decideLesion(id, lesion, decision) {
    const decisions = lesionDecisions(id);
    if (decisions[lesion] === decision) delete decisions[lesion]; else decisions[lesion] = decision;
    record(id, null, lesionsText(decisions));
  }

  function viewerOptions() {
    return { served: SERVED, headers: API_HEADERS, vendor: DATA.viewer, reviewer: () => $("reviewer").value,
             onSaved: (result) => {
               const k = cards[result.case_id];
               if (!k) return;
               k.node.classList.add("corrected");
               k.tmtv.textContent = "TMTV " + fmt(result.tmtv_ml, 1) + " ml";
               k.count.textContent = result.lesion_count + " lesion(s)";
               reviews[result.case_id] = Object.assign({}, reviews[result.case_id] || { case_id: result.case_id }, { decision: "corrected" });
               show(result.case_id);
             } };
  }
  function openViewer(id) {
    const c = DATA.cases.find((x) => x.case_id === id);
    if (!c || !c.volumes || !window.LionViewer) return Promise.resolve(null);
    const k = cards[id];
    k.node.hidden = false;
    const ready = window.LionViewer.open(c, k.viewerSlot, viewerOptions());
    k.node.scrollIntoView({ block: "start" });
    return ready;
  }
  function jumpTo(id, centroid) {
    openViewer(id).then((v) => { if (v && v.nv && centroid) v.lesion(centroid); });
  }

  function lesionTable(c) {
    const wrap = el("div", { class: "lesions" });
    const table = el("table");
    const head = el("tr");
    for (const [name, cls] of [["#", ""], ["ml", ""], ["SUVmax", ""], ["confidence", ""],
                               ["fold agreement", ""], ["nearest organ", "text"], ["lesion", "text"]]) {
      head.appendChild(el("th", cls ? { class: cls } : {}, name));
    }
    table.appendChild(head);
    for (const row of c.lesions) {
      const les = Object.fromEntries(DATA.lesion_columns.map((k, i) => [k, row[i]]));
      const tr = el("tr", les.id === null ? {} : { "data-lesion-id": String(les.id), title: c.volumes ? "click: show this lesion in the slice viewer" : "" });
      if (c.volumes && les.centroid_mm) tr.addEventListener("click", (e) => { if (e.target.tagName !== "BUTTON") jumpTo(c.case_id, les.centroid_mm); });
      tr.appendChild(el("td", {}, les.id === null ? "" : String(les.id)));
      tr.appendChild(el("td", {}, fmt(les.volume_ml, 2)));
      tr.appendChild(el("td", {}, fmt(les.suv_max, 1)));
      tr.appendChild(el("td", { class: "confidence" }, fmt(les.confidence, 2)));
      tr.appendChild(el("td", {}, fmt(les.fold_agreement, 2)));
      const organ = les.organ ? les.organ + (les.organ_mm === null ? "" : " (" + fmt(les.organ_mm, 0) + " mm)") : "";
      tr.appendChild(el("td", { class: "text" }, organ));
      const decide = el("td", { class: "text lesion-decide" });
      if (les.id !== null) {
        for (const [value, label] of [["accept", "\u2713"], ["reject", "\u2717"]]) {
          const b = el("button", { type: "button", class: "lesion-" + value, value, title: value + " lesion " + les.id, "aria-pressed": "false" }, label);
          b.addEventListener("click", () => decideLesion(c.case_id, les.id, value));
          decide.appendChild(b);
        }
      }
      tr.appendChild(decide);
      table.appendChild(tr);
    }
    wrap.appendChild(table);
    return wrap;
  }

  const nearScreen = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      nearScreen.unobserve(e.target);
      e.target.appendChild(lesionTable(e.target.lesionCase));
      showLesions(e.target.lesionCase.case_id);
    }
  }, { rootMargin: "1500px 0px" }) : null;

  function card(c) {
    const node = el("article", {
      class: "card" + (c.flag_score ? " flagged" : "") + (c.corrected ? " corrected" : ""), "data-case-id": c.case_id,
      "data-flag-score": c.flag_score === null ? "" : String(c.flag_score),
      "data-rank": String(c.rank), "data-tmtv": String(c.tmtv_ml === null ? 0 : c.tmtv_ml),
      "data-lesions": String(c.lesion_count),
      "data-dice": c.dice === undefined || c.dice === null ? "" : String(c.dice),
    });
    const h = el("h2");
    h.appendChild(el("span", { class: "rank" }, "#" + c.rank));
    h.appendChild(el("span", { class: "case-id" }, c.case_id));
    h.appendChild(el("span", { class: "badge flag" + (c.flag_score ? "" : " na") }, "flag " + fmt(c.flag_score, 2)));
    const tmtv = el("span", { class: "badge" }, "TMTV " + fmt(c.tmtv_ml, 1) + " ml");
    const count = el("span", { class: "badge" }, c.lesion_count + " lesion(s)");
    h.append(tmtv, count);
    h.appendChild(el("span", { class: "badge" }, "SUVmax " + fmt(c.suv_max, 1)));
    if (DATA.has_gt) h.appendChild(el("span", { class: "badge dice" }, "Dice " + fmt(c.dice, 3)));
    if (c.corrected) h.appendChild(el("span", { class: "badge corrected", title: "numbers of the reader's corrected mask (tumor_corrected.nii.gz)" }, "corrected"));
    if (c.model) h.appendChild(el("span", { class: "badge model", title: "the model that predicted this case" + (c.lion_version ? ", lion " + c.lion_version : "") }, c.model));
    const viewerSlot = el("div", { class: "viewer-slot" });
    if (c.volumes) {
      const open = el("button", { type: "button", class: "open-viewer", title: "PET, tumor and organs in three planes" }, "slices");
      open.addEventListener("click", () => openViewer(c.case_id));
      h.appendChild(open);
    }
    node.appendChild(h);
    node.appendChild(viewerSlot);
    const pics = el("div", { class: "pictures" });
    if (!c.pictures.length) pics.appendChild(el("div", { class: "nopicture" }, "no MIP picture"));
    for (const p of c.pictures) {  // a click opens the picture at full size
      const link = el("a", { href: p.src, target: "_blank", rel: "noopener" });
      link.appendChild(el("img", { src: p.src, alt: c.case_id + " " + p.view, title: p.view,
                                   loading: "lazy", decoding: "async" }));
      pics.appendChild(link);
    }
    node.appendChild(pics);
    const facts = el("div", { class: "facts" });
    const reasons = el("ul", { class: "reasons" });
    if (c.flag_score === null) reasons.appendChild(el("li", { class: "na" }, "flag score n/a (not in report.json)"));
    for (const r of c.flag_reasons) reasons.appendChild(el("li", {}, r));
    facts.appendChild(reasons);
    if (c.lesions.length) {  // filled when the card comes near the screen: 1,000 cards stay quick
      const slot = el("div", { class: "lesion-slot" });
      slot.lesionCase = c;
      facts.appendChild(slot);
      if (nearScreen) nearScreen.observe(slot); else slot.appendChild(lesionTable(c));
    }
    if (c.lesion_count > c.lesions.length) {
      facts.appendChild(el("div", { class: "saved" }, "largest " + c.lesions.length + " of " + c.lesion_count + " lesions shown"));
    }
    const decide = el("div", { class: "decide" });
    const accept = el("button", { type: "button", class: "accept", "aria-pressed": "false" }, "Accept");
    const reject = el("button", { type: "button", class: "reject", "aria-pressed": "false" }, "Reject");
    const comment = el("textarea", { class: "comment", placeholder: "comment", rows: "1" });
    const saved = el("span", { class: "saved" });
    accept.addEventListener("click", () => record(c.case_id, "accept"));
    reject.addEventListener("click", () => record(c.case_id, "reject"));
    comment.addEventListener("change", () => record(c.case_id, null));
    decide.append(accept, reject, comment, saved);
    facts.appendChild(decide);
    node.appendChild(facts);
    cards[c.case_id] = { node, accept, reject, comment, saved, tmtv, count, viewerSlot };
    show(c.case_id);
    return node;
  }

  function show(id) {  // a card's look from its review
    const r = reviews[id] || {};
    const k = cards[id];
    k.node.classList.toggle("accept", r.decision === "accept");
    k.node.classList.toggle("reject", r.decision === "reject");
    k.accept.setAttribute("aria-pressed", String(r.decision === "accept"));
    k.reject.setAttribute("aria-pressed", String(r.decision === "reject"));
    if (document.activeElement !== k.comment) k.comment.value = r.comment || "";
    k.saved.textContent = r.timestamp ? (r.reviewer ? r.reviewer + ", " : "") + r.timestamp : "";
    k.node.classList.toggle("corrected", r.decision === "corrected" || k.node.classList.contains("corrected"));
    showLesions(id);
  }

  async function record(id, decision, lesions) {
    const k = cards[id];
    const before = reviews[id] || {};
    const chosen = decision === null ? before.decision || "" : (before.decision === decision ? "" : decision);
    // unsaved: in this browser only, until the server answers with the row it recorded
    const row = { case_id: id, decision: chosen, comment: k.comment.value, reviewer: $("reviewer").value,
                  timestamp: new Date().toISOString().slice(0, 19) + "+00:00", unsaved: true,
                  lesions: lesions === undefined ? before.lesions || "" : lesions };
    reviews[id] = row;
    saveLocal();
    show(id);
    applyFilter();
    if (!SERVED) { status("recorded in this browser; Export CSV to save reviews.csv"); return; }
    await send(row);
  }

  async function send(row) {  // to reviews.csv; the server's row (its timestamp) replaces ours
    const id = row.case_id;
    try {
      const fields = Object.fromEntries(COLUMNS.map((c) => [c, row[c]]));
      const answer = await fetch("api/reviews", { method: "POST", headers: Object.assign({ "Content-Type": "application/json" }, API_HEADERS),
                                                 body: JSON.stringify(fields) });
      const body = await answer.json();
      if (!answer.ok) throw new Error(body.error || answer.statusText);
      if (reviews[id] === row) reviews[id] = body;  // unless a newer click came meanwhile
      saveLocal();
      show(id);
      status("saved " + id + " to reviews.csv");
      return true;
    } catch (e) {
      status("NOT saved to reviews.csv (" + e.message + "); Export CSV keeps it", true);
      return false;
    }
  }

  function csvField(v) {  // a text a spreadsheet would run as a formula gets a leading '
    let s = String(v === undefined || v === null ? "" : v);
    if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function exportCsv() {
    const rows = Object.values(reviews).filter((r) => r.decision || r.comment);
    const text = [COLUMNS.join(",")].concat(rows.map((r) => COLUMNS.map((c) => csvField(r[c])).join(","))).join("\n") + "\n";
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    const a = el("a", { href: url, download: "reviews.csv" });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    status("exported " + rows.length + " review(s)");
  }

  const SORTS = {
    rank: (a, b) => a.rank - b.rank,
    flag: (a, b) => (b.flag_score ?? -Infinity) - (a.flag_score ?? -Infinity) || a.rank - b.rank,
    dice: (a, b) => (a.dice_rank ?? Infinity) - (b.dice_rank ?? Infinity) || a.rank - b.rank,
    tmtv: (a, b) => (b.tmtv_ml ?? 0) - (a.tmtv_ml ?? 0) || a.rank - b.rank,
    lesions: (a, b) => b.lesion_count - a.lesion_count || a.rank - b.rank,
    case: (a, b) => (a.case_id < b.case_id ? -1 : a.case_id > b.case_id ? 1 : 0),
  };
  function applySort() {
    const main = $("cards");
    for (const c of DATA.cases.slice().sort(SORTS[$("sort").value])) main.appendChild(cards[c.case_id].node);
  }
  function applyFilter() {
    const text = $("filter").value.trim().toLowerCase();
    const want = $("decision-filter").value;
    const minFlag = parseFloat($("min-flag").value);
    let shown = 0;
    for (const c of DATA.cases) {
      const r = (reviews[c.case_id] || {}).decision || "";
      const hay = (c.case_id + " " + c.flag_reasons.join(" ")).toLowerCase();
      const ok = (!text || hay.includes(text)) && (want === "all" || (want === "undecided" ? !r : r === want)) &&
                 (isNaN(minFlag) || (c.flag_score !== null && c.flag_score >= minFlag));
      cards[c.case_id].node.hidden = !ok;
      shown += ok;
    }
    $("shown").textContent = shown + " of " + DATA.cases.length + " cases";
  }

  async function loadServed() {  // decisions other reviewers recorded since the page was built
    let served;
    try {
      const answer = await fetch("api/reviews", { headers: API_HEADERS });
      if (!answer.ok) return;
      served = await answer.json();
    } catch (e) { status("server not reachable: decisions stay in this browser", true); return; }
    for (const row of served) {  // the newer of ours and the server's; an older one of ours goes
      if (!newer(row, reviews[row.case_id])) continue;
      reviews[row.case_id] = row;
      if (cards[row.case_id]) show(row.case_id);
    }
    saveLocal();
    applyFilter();
    // decisions of this browser that never reached the server and are newer than its rows
    const pending = Object.values(reviews).filter((r) => r.unsaved && cards[r.case_id]);
    let sent = 0;
    for (const row of pending) sent += await send(row);
    status(pending.length ? sent + " of " + pending.length + " decision(s) made in this browser saved to reviews.csv now"
                          : "served: decisions are saved to reviews.csv", sent < pending.length);
  }

  loadLocal();
  if (!DATA.has_gt) $("sort").querySelector('option[value="dice"]').remove();
  const main = $("cards");
  for (const c of DATA.cases) main.appendChild(card(c));
  $("sort").addEventListener("change", applySort);
  for (const id of ["filter", "decision-filter", "min-flag"]) $(id).addEventListener("input", applyFilter);
  $("export").addEventListener("click", exportCsv);
  applyFilter();
  if (SERVED) loadServed(); else status("opened from disk: Export CSV saves the decisions");
  const models = DATA.models.length ? DATA.models.join(", ") : "model not named in report.json";
  $("model").textContent = "model: " + models + " \u00b7 lion " + DATA.lion_version;
  function fromHash() {  // index.html#view=<case_id> opens that case's viewer
    const m = /^#view=(.+)$/.exec(location.hash);
    if (m) openViewer(decodeURIComponent(m[1]));
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
  document.body.setAttribute("data-ready", "true");
})();
