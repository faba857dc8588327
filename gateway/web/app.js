// slotd booking page: a small client of the WebSocket protocol in
// docs/protocol.md. It subscribes to live availability and applies the
// server's deltas, so slots taken elsewhere vanish without a reload.
"use strict";

(function () {
  const link = location.pathname.split("/")[2] || "";
  const tz = (Intl.DateTimeFormat().resolvedOptions().timeZone) || "UTC";
  const $ = (id) => document.getElementById(id);

  let ws = null;
  let reqSeq = 0;
  const pending = new Map();   // request id → {resolve, reject}
  let tenant = null;           // tenant_info
  let service = null;          // selected service id
  let weekOffset = 0;
  let subId = null;
  const slots = new Map();     // start (RFC 3339) → slot
  let hold = null;
  let backoff = 500;

  $("tz").textContent = tz;

  function setStatus(state, text) {
    const el = $("status");
    el.dataset.state = state;
    el.textContent = text;
  }

  function showError(msg) {
    const el = $("error");
    if (!msg) { el.hidden = true; el.textContent = ""; return; }
    el.hidden = false;
    el.textContent = msg;
  }

  function request(type, fields) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        reject({ code: "unavailable", message: "not connected; retrying…" });
        return;
      }
      const id = "r" + (++reqSeq);
      pending.set(id, { resolve, reject });
      ws.send(JSON.stringify(Object.assign({ v: 1, id: id, type: type }, fields || {})));
    });
  }

  function localDate(offsetDays) {
    // Today's date in the viewer's zone, shifted by whole days.
    const parts = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
      .formatToParts(new Date());
    const get = (t) => parts.find((p) => p.type === t).value;
    const d = new Date(Date.UTC(+get("year"), +get("month") - 1, +get("day") + offsetDays));
    return d.toISOString().slice(0, 10);
  }

  function fmtTime(rfc) { return rfc.slice(11, 16); }
  function fmtDay(date) {
    const d = new Date(date + "T12:00:00Z");
    return d.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" });
  }

  function connect() {
    setStatus("connecting", "connecting…");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(proto + "//" + location.host + "/v1/ws?link=" + encodeURIComponent(link), "slotd.v1");
    ws.onmessage = (ev) => onFrame(JSON.parse(ev.data));
    ws.onclose = () => {
      setStatus("offline", "offline, reconnecting…");
      for (const p of pending.values()) p.reject({ code: "unavailable", message: "connection lost" });
      pending.clear();
      subId = null;
      setTimeout(connect, backoff);
      backoff = Math.min(backoff * 2, 10000);
    };
  }

  function onFrame(f) {
    if (f.id && pending.has(f.id)) {
      const p = pending.get(f.id);
      pending.delete(f.id);
      if (f.type === "error") p.reject(f); else p.resolve(f);
      return;
    }
    switch (f.type) {
      case "welcome":
        backoff = 500;
        setStatus("live", "live");
        loadTenant();
        break;
      case "availability":
        if (f.sub !== subId) return;
        if (f.resync) { slots.clear(); }
        for (const s of (f.slots || [])) slots.set(s.start, s);
        for (const r of (f.removed || [])) deleteStart(r);
        for (const s of (f.upserted || [])) { deleteStart(s.start); slots.set(s.start, s); }
        renderSlots();
        break;
      case "subscription_ended":
        if (f.sub === subId) { subId = null; subscribe(); }
        break;
      case "error":
        showError(f.message);
        break;
    }
  }

  // Removed times may carry a different offset spelling than the slot key.
  function deleteStart(t) {
    const ms = Date.parse(t);
    for (const k of slots.keys()) if (Date.parse(k) === ms) slots.delete(k);
  }

  async function loadTenant() {
    try {
      const f = await request("tenant_info");
      tenant = f.tenant;
      document.title = "Book — " + tenant.name;
      $("tenant-name").textContent = tenant.name;
      renderServices();
      if (service) subscribe();
    } catch (e) { showError(e.message); }
  }

  function renderServices() {
    const box = $("services");
    box.textContent = "";
    for (const s of (tenant.services || [])) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = s.name + " (" + s.duration_min + " min)";
      b.dataset.service = s.id;
      b.setAttribute("aria-pressed", String(s.id === service));
      b.onclick = () => { service = s.id; weekOffset = 0; renderServices(); subscribe(); };
      box.appendChild(b);
    }
  }

  async function subscribe() {
    if (!service) return;
    if (subId) {
      const old = subId;
      subId = null;
      request("unsubscribe", { sub: old }).catch(() => {});
    }
    slots.clear();
    const from = localDate(weekOffset * 7), to = localDate(weekOffset * 7 + 7);
    $("week-label").textContent = fmtDay(from) + " – " + fmtDay(localDate(weekOffset * 7 + 6));
    $("slots-section").hidden = false;
    $("slots").setAttribute("aria-busy", "true");
    try {
      const f = await request("subscribe", { service: service, from: from, to: to, tz: tz });
      subId = f.sub;
      for (const s of (f.slots || [])) slots.set(s.start, s);
      showError("");
    } catch (e) { showError(e.message); }
    $("slots").removeAttribute("aria-busy");
    renderSlots();
  }

  function resourceName(id) {
    const r = tenant && tenant.resources.find((x) => x.id === id);
    return r ? r.name : id;
  }

  function renderSlots() {
    const box = $("slots");
    box.textContent = "";
    const byDay = new Map();
    for (let i = 0; i < 7; i++) byDay.set(localDate(weekOffset * 7 + i), []);
    const sorted = Array.from(slots.values()).sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
    for (const s of sorted) {
      const day = s.start.slice(0, 10);
      if (byDay.has(day)) byDay.get(day).push(s);
    }
    for (const [day, list] of byDay) {
      const col = document.createElement("div");
      col.className = "day";
      const h = document.createElement("h3");
      h.textContent = fmtDay(day);
      col.appendChild(h);
      const times = document.createElement("div");
      times.className = "times";
      if (list.length === 0) {
        const n = document.createElement("span");
        n.className = "none";
        n.textContent = "no times";
        times.appendChild(n);
      }
      for (const s of list) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "slot";
        b.dataset.start = s.start;
        b.textContent = fmtTime(s.start) + (s.seats > 1 ? " · " + s.seats + " free" : "");
        b.title = s.resources.map(resourceName).join(", ");
        b.onclick = () => takeHold(s);
        times.appendChild(b);
      }
      col.appendChild(times);
      box.appendChild(col);
    }
    box.dataset.count = String(slots.size);
  }

  async function takeHold(s) {
    showError("");
    try {
      if (hold) { await request("release", { hold_id: hold.id }).catch(() => {}); hold = null; }
      const f = await request("hold", { service: service, start: s.start });
      hold = f.hold;
      $("held-time").textContent = fmtDay(s.start.slice(0, 10)) + " " + fmtTime(s.start) + " with " + resourceName(hold.resource_id);
      $("held-expiry").textContent = "(until " + new Date(hold.expires_at).toLocaleTimeString([], { timeZone: tz, hour: "2-digit", minute: "2-digit" }) + ")";
      $("form-section").hidden = false;
      $("name").focus();
    } catch (e) { showError(e.message); }
  }

  $("book-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!hold) return;
    const btn = $("book-button");
    btn.disabled = true;
    try {
      const f = await request("book", {
        hold_id: hold.id,
        customer: { name: $("name").value, email: $("email").value },
        idempotency_key: "page-" + hold.id,
      });
      const b = f.booking;
      hold = null;
      $("form-section").hidden = true;
      $("slots-section").hidden = true;
      $("services-section").hidden = true;
      const start = new Date(b.start).toLocaleString([], { timeZone: tz, dateStyle: "full", timeStyle: "short" });
      const svc = tenant.services.find((x) => x.id === b.service_id);
      $("confirmation-text").textContent = (svc ? svc.name : b.service_id) + " on " + start + " with " + resourceName(b.resource_id) + ".";
      $("booking-ref").textContent = b.id;
      $("confirmation").hidden = false;
      showError("");
    } catch (e) {
      showError(e.message);
    } finally {
      btn.disabled = false;
    }
  });

  $("cancel-hold").onclick = async () => {
    if (hold) { await request("release", { hold_id: hold.id }).catch(() => {}); hold = null; }
    $("form-section").hidden = true;
  };
  $("book-another").onclick = () => {
    $("confirmation").hidden = true;
    $("services-section").hidden = false;
    $("slots-section").hidden = false;
    subscribe();
  };
  $("prev-week").onclick = () => { if (weekOffset > 0) { weekOffset--; subscribe(); } };
  $("next-week").onclick = () => { weekOffset++; subscribe(); };

  connect();
})();
