// tidings web client: plain JavaScript, no build step, no dependencies.
//
// State lives in one object `S`. The chat list comes from the server
// (GET /api/v1/conversations) and is kept live by WebSocket events; message
// history is loaded per conversation when it is opened and then kept exact:
// deduped by (conversation, seq), gaps filled with `after=` fetches, and after
// every reconnect each loaded conversation catches up `after` its last seq.
// Outgoing messages carry a client_msg_id and stay pending (in sessionStorage,
// so a reload keeps them) until their ack; a resend reuses the id, so the
// server never stores one twice.
"use strict";

(() => {
  const API = "/api/v1";
  const PAGE = 50;
  const CATCH_UP_PAGE = 200;
  const PING_MS = 25000;
  const DEAD_MS = 70000;
  const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
  const COLOURS = 8;

  const S = {
    token: null,
    me: null,
    entries: new Map(), // conversation id -> chat-list entry
    convs: new Map(), // conversation id -> loaded history
    users: new Map(),
    userFetches: new Map(),
    groups: new Map(),
    entryFetches: new Map(),
    pending: [], // {cmid, conversation, body, state: "sending" | "failed", error}
    peerRead: {}, // private conversation id -> the peer's read seq (from read events)
    openId: null,
    ws: null,
    authed: false,
    attempt: 0,
    retryTimer: 0,
    countdownTimer: 0,
    pingTimer: 0,
    lastFrameAt: 0,
    syncGen: 0,
    refs: 0,
    membersOpen: false,
    connState: "",
    clock: 0, // counts live updates of entries, so a list fetched earlier cannot drop them
  };

  // -- small helpers ----------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function randomId() {
    // crypto.randomUUID needs a secure context; getRandomValues does not.
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function hash(text) {
    let h = 2166136261;
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 16777619);
    }
    return h >>> 0;
  }

  function initials(name) {
    const words = String(name || "?").trim().split(/\s+/).filter(Boolean);
    if (words.length >= 2) {
      return (Array.from(words[0])[0] + Array.from(words[1])[0]).toUpperCase();
    }
    return (Array.from(words[0] || "?")[0] || "?").toUpperCase();
  }

  function avatar(key, name, extra) {
    const node = el("div", `avatar c${hash(key) % COLOURS}${extra ? " " + extra : ""}`, initials(name));
    node.setAttribute("aria-hidden", "true");
    return node;
  }

  const pad = (n) => String(n).padStart(2, "0");
  const hhmm = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const isoDate = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;

  function daysAgo(d) {
    const now = new Date();
    const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
    const day = new Date(d.getFullYear(), d.getMonth(), d.getDate());
    return Math.round((today - day) / 86400000);
  }

  // The chat list: HH:MM today, "Yesterday", a weekday within a week, else the date.
  function listTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    const ago = daysAgo(d);
    if (ago <= 0) return hhmm(d);
    if (ago === 1) return "Yesterday";
    if (ago < 7) return WEEKDAYS[d.getDay()];
    return isoDate(d);
  }

  // A time line in a conversation: the same, with the time of day after the day.
  function lineTime(iso) {
    const d = new Date(iso);
    const ago = daysAgo(d);
    if (ago <= 0) return hhmm(d);
    if (ago === 1) return `Yesterday ${hhmm(d)}`;
    if (ago < 7) return `${WEEKDAYS[d.getDay()]} ${hhmm(d)}`;
    return `${isoDate(d)} ${hhmm(d)}`;
  }

  const enc = encodeURIComponent;

  function privateId(a, b) {
    return a < b ? `p:${a}-${b}` : `p:${b}-${a}`;
  }

  // -- storage ---------------------------------------------------------------

  function load(storage, key, fallback) {
    try {
      const raw = storage.getItem(key);
      return raw ? JSON.parse(raw) : fallback;
    } catch {
      return fallback;
    }
  }

  function save(storage, key, value) {
    try {
      storage.setItem(key, JSON.stringify(value));
    } catch {
      // storage full or disabled: the client still works for this page's life
    }
  }

  const pendingKey = () => `tidings.pending.${S.me.id}`;
  const peerReadKey = () => `tidings.peerRead.${S.me.id}`;
  const savePending = () => save(sessionStorage, pendingKey(), S.pending);

  // -- HTTP ------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    const headers = {};
    if (S.token) headers.Authorization = `Bearer ${S.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network", "The server cannot be reached.");
    }
    if (response.status === 204) return null;
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = (data && data.error) || {};
      if (response.status === 401 && S.token && path !== "/sessions") {
        signedOut("Your session has ended. Sign in again.");
      }
      throw new ApiError(response.status, error.code || `http_${response.status}`,
        error.message || response.statusText || "Request failed");
    }
    return data;
  }

  // -- users, groups, entries ------------------------------------------------

  function user(id) {
    const known = S.users.get(id);
    if (known) return known;
    if (!S.userFetches.has(id)) {
      const fetching = api("GET", `/users/${id}`)
        .then((found) => {
          S.users.set(id, found);
          render({ list: true, pane: true, members: true });
        })
        .catch(() => {})
        .finally(() => S.userFetches.delete(id));
      S.userFetches.set(id, fetching);
    }
    return null;
  }

  function userName(id) {
    if (S.me && id === S.me.id) return S.me.display_name;
    const found = user(id);
    return found ? found.display_name : `User ${id}`;
  }

  // A username, or a numeric user id: GET /users?username= first, then by id.
  async function resolveUser(text) {
    const wanted = text.trim().replace(/^@/, "");
    if (!wanted) throw new ApiError(422, "bad_request", "Enter a username or a user id.");
    const numeric = /^\d{1,18}$/.test(wanted);
    try {
      const found = await api("GET", `/users?username=${enc(wanted)}`);
      if (found && typeof found.id === "number") {
        S.users.set(found.id, found);
        return found;
      }
    } catch (error) {
      if (![404, 405, 422].includes(error.status)) throw error;
      if (!numeric) {
        throw new ApiError(404, "not_found",
          error.status === 404 ? `No user named “${wanted}”.` : "Enter a numeric user id.");
      }
    }
    if (!numeric) throw new ApiError(404, "not_found", `No user named “${wanted}”.`);
    try {
      const found = await api("GET", `/users/${wanted}`);
      S.users.set(found.id, found);
      return found;
    } catch (error) {
      if (error.status === 404) throw new ApiError(404, "not_found", `No user with id ${wanted}.`);
      throw error;
    }
  }

  async function loadGroup(groupId) {
    try {
      const group = await api("GET", `/groups/${groupId}`);
      S.groups.set(groupId, group);
      for (const id of group.member_ids) user(id);
      render({ pane: true, members: true });
      return group;
    } catch (error) {
      if (error.status === 403 || error.status === 404) dropConversation(`g:${groupId}`, true);
      return null;
    }
  }

  function sortedEntries() {
    return [...S.entries.values()].sort((a, b) =>
      a.updated_at < b.updated_at ? 1 : a.updated_at > b.updated_at ? -1 : a.id < b.id ? -1 : 1);
  }

  function mergeEntry(entry, live = true) {
    const old = S.entries.get(entry.id);
    let next = { ...entry, local: false, clock: live ? ++S.clock : old ? old.clock : 0 };
    if (old && !old.local) {
      // A live event may be newer than a list fetched just before it.
      if (old.last_seq > next.last_seq) {
        next = { ...next, last_seq: old.last_seq, last_message: old.last_message,
          updated_at: old.updated_at, unread: old.unread };
      }
      if (old.read_seq > next.read_seq) {
        next = { ...next, read_seq: old.read_seq, unread: Math.min(old.unread, next.unread) };
      }
    }
    if (typeof entry.peer_read_seq === "number") notePeerRead(entry.id, entry.peer_read_seq);
    if (entry.last_message && entry.type === "private" && entry.last_message.sender !== S.me.id) {
      notePeerRead(entry.id, entry.last_message.seq);
    }
    S.entries.set(entry.id, next);
    return next;
  }

  // One conversation's entry: GET /conversations/{id}, else the whole list.
  function fetchEntry(id) {
    if (S.entryFetches.has(id)) return S.entryFetches.get(id);
    const fetching = api("GET", `/conversations/${enc(id)}`)
      .then((entry) => {
        const merged = mergeEntry(entry);
        if (merged.last_seq === 0 && merged.type === "private") merged.local = true;
        render({ list: true, pane: true });
        return merged;
      })
      .catch(async (error) => {
        if (error.status === 403) {
          dropConversation(id, true);
          return null;
        }
        await sync();
        return S.entries.get(id) || null;
      })
      .finally(() => S.entryFetches.delete(id));
    S.entryFetches.set(id, fetching);
    return fetching;
  }

  function notePeerRead(id, seq) {
    if ((S.peerRead[id] || 0) >= seq) return;
    S.peerRead[id] = seq;
    save(localStorage, peerReadKey(), S.peerRead);
    if (S.openId === id) render({ pane: true });
  }

  function dropConversation(id, tellUser) {
    const entry = S.entries.get(id);
    S.entries.delete(id);
    S.convs.delete(id);
    if (S.openId === id) {
      closeConversation();
      if (tellUser && entry) notice(`You are no longer in “${entry.title}”.`);
    }
    render({ list: true });
  }

  // -- history -----------------------------------------------------------------

  function conv(id) {
    let found = S.convs.get(id);
    if (!found) {
      found = { msgs: new Map(), loaded: false, loading: false, hasMore: false, minSeq: 0,
        maxSeq: 0, catching: false, again: false, older: false };
      S.convs.set(id, found);
    }
    return found;
  }

  function removePendingFor(message) {
    if (!S.me || message.sender !== S.me.id || !message.client_msg_id) return;
    const before = S.pending.length;
    S.pending = S.pending.filter((p) => p.cmid !== message.client_msg_id);
    if (S.pending.length !== before) savePending();
  }

  // Store messages of a loaded conversation, deduped by seq; `complete` says
  // the server has nothing after the highest of them.
  function addMessages(id, messages, complete) {
    for (const message of messages) removePendingFor(message);
    const c = S.convs.get(id);
    if (!c || !c.loaded) return;
    for (const message of messages) {
      if (!c.msgs.has(message.seq)) c.msgs.set(message.seq, message);
      if (message.sender !== S.me.id && S.entries.get(id)?.type === "private") {
        notePeerRead(id, message.seq);
      }
    }
    if (!c.minSeq && messages.length) c.minSeq = Math.min(...messages.map((m) => m.seq));
    while (c.msgs.has(c.maxSeq + 1)) c.maxSeq += 1;
    if (complete) c.maxSeq = Math.max(c.maxSeq, ...c.msgs.keys());
    else if ([...c.msgs.keys()].some((seq) => seq > c.maxSeq)) catchUp(id);
    if (S.openId === id) render({ pane: true });
  }

  async function catchUp(id) {
    const c = S.convs.get(id);
    if (!c || !c.loaded) return;
    if (c.catching) {
      c.again = true;
      return;
    }
    c.catching = true;
    try {
      do {
        c.again = false;
        for (;;) {
          const data = await api("GET",
            `/conversations/${enc(id)}/messages?after=${c.maxSeq}&limit=${CATCH_UP_PAGE}`);
          if (S.convs.get(id) !== c) return;
          const full = data.messages.length >= CATCH_UP_PAGE;
          addMessages(id, data.messages, !full);
          if (!full) break;
        }
      } while (c.again);
    } catch (error) {
      if (error.status === 403) dropConversation(id, true);
    } finally {
      c.catching = false;
    }
  }

  async function loadLatest(id) {
    const c = conv(id);
    if (c.loaded || c.loading) return;
    c.loading = true;
    try {
      const data = await api("GET", `/conversations/${enc(id)}/messages?limit=${PAGE}`);
      if (S.convs.get(id) !== c) return;
      c.loaded = true;
      c.hasMore = data.messages.length >= PAGE && data.messages[0].seq > 1;
      c.minSeq = data.messages.length ? data.messages[0].seq : 0;
      c.maxSeq = data.messages.length ? data.messages[data.messages.length - 1].seq : 0;
      addMessages(id, data.messages, true);
      if (S.openId === id) render({ pane: true, scroll: "bottom" });
      // Anything that arrived while this page was in flight.
      const entry = S.entries.get(id);
      if (entry && entry.last_seq > c.maxSeq) catchUp(id);
    } catch (error) {
      if (error.status === 403) dropConversation(id, true);
    } finally {
      c.loading = false;
    }
  }

  async function loadOlder(id) {
    const c = S.convs.get(id);
    if (!c || !c.loaded || !c.hasMore || c.older || !c.minSeq) return;
    c.older = true;
    const box = $("messages");
    try {
      const data = await api("GET",
        `/conversations/${enc(id)}/messages?before=${c.minSeq}&limit=${PAGE}`);
      if (S.convs.get(id) !== c) return;
      for (const message of data.messages) c.msgs.set(message.seq, message);
      if (data.messages.length) c.minSeq = data.messages[0].seq;
      c.hasMore = data.messages.length >= PAGE && c.minSeq > 1;
      if (S.openId === id) {
        const fromBottom = box.scrollHeight - box.scrollTop;
        renderPane();
        box.scrollTop = box.scrollHeight - fromBottom;
      }
    } catch {
      // try again on the next scroll
    } finally {
      c.older = false;
    }
  }

  // -- live updates ------------------------------------------------------------

  function applyMessage(message) {
    const entry = S.entries.get(message.conversation);
    if (!entry) {
      fetchEntry(message.conversation);
      return;
    }
    if (message.seq > entry.last_seq) {
      entry.last_seq = message.seq;
      entry.last_message = message;
      entry.updated_at = message.sent_at;
      entry.local = false;
      entry.clock = ++S.clock;
      if (message.sender === S.me.id) {
        entry.read_seq = message.seq;
        entry.unread = 0;
      } else {
        entry.unread += 1;
      }
    }
    render({ list: true });
  }

  function onMessage(message) {
    applyMessage(message);
    addMessages(message.conversation, [message], false);
    if (message.conversation === S.openId && message.sender !== S.me.id) markOpenRead();
  }

  function onRead(frame) {
    const entry = S.entries.get(frame.conversation);
    if (frame.user !== S.me.id) {
      notePeerRead(frame.conversation, frame.seq);
      return;
    }
    if (!entry || frame.seq <= entry.read_seq) return;
    entry.read_seq = frame.seq;
    if (frame.seq >= entry.last_seq) entry.unread = 0;
    else fetchEntry(frame.conversation); // the exact count of what is left
    render({ list: true });
  }

  function onError(frame) {
    const ref = typeof frame.ref === "string" ? frame.ref : "";
    if (!ref.startsWith("m:")) return;
    const pending = S.pending.find((p) => p.cmid === ref.slice(2));
    if (!pending) return;
    if (frame.code === "unavailable" || frame.code === "rate_limited" || frame.code === "internal") {
      setTimeout(() => sendPending(pending), 1500 + Math.random() * 1000);
      return;
    }
    pending.state = "failed";
    pending.error = frame.code === "too_large" ? "Too long" :
      frame.code === "not_member" ? "Not a member" : frame.message || "Not sent";
    savePending();
    render({ pane: true });
  }

  function onFrame(frame) {
    switch (frame.type) {
      case "auth_ok":
        S.authed = true;
        S.attempt = 0;
        S.me = frame.user;
        setConnection("online");
        startPing();
        sync();
        break;
      case "message":
        onMessage(frame.message);
        break;
      case "ack":
        if (frame.message) {
          removePendingFor(frame.message);
          onMessage(frame.message);
        } else if (frame.conversation) {
          mergeEntry(frame.conversation);
          render({ list: true });
        }
        break;
      case "read":
        onRead(frame);
        break;
      case "conversation":
        mergeEntry(frame.conversation);
        if (frame.conversation.group_id) loadGroup(frame.conversation.group_id);
        render({ list: true });
        break;
      case "conversation_removed":
        dropConversation(frame.conversation, true);
        break;
      case "error":
        onError(frame);
        break;
      default:
        break; // pong, push and anything newer
    }
  }

  // After every (re)connect: the list, then each loaded conversation `after`
  // its last seq, then whatever is still unsent.
  async function sync() {
    const generation = ++S.syncGen;
    const started = S.clock;
    try {
      const data = await api("GET", "/conversations?limit=1000");
      if (generation !== S.syncGen) return;
      const seen = new Set();
      for (const entry of data.conversations) {
        seen.add(entry.id);
        mergeEntry(entry, false);
      }
      // Gone from the list: left or removed while away (unless it came in since).
      for (const [id, entry] of [...S.entries]) {
        if (!seen.has(id) && !entry.local && !(entry.clock > started)) dropConversation(id, true);
      }
      render({ list: true, pane: true });
      if (S.openId && !S.entries.has(S.openId)) await openFromRoute();
      for (const id of S.convs.keys()) catchUp(id);
      for (const pending of S.pending) if (pending.state === "sending") sendPending(pending);
      markOpenRead();
      if (S.openId) {
        const entry = S.entries.get(S.openId);
        if (entry && entry.group_id) loadGroup(entry.group_id);
      }
    } catch {
      // offline again: the next auth_ok runs this once more
    }
  }

  // -- WebSocket ----------------------------------------------------------------

  function wsSend(frame) {
    if (!S.ws || !S.authed || S.ws.readyState !== WebSocket.OPEN) return false;
    S.ws.send(JSON.stringify(frame));
    return true;
  }

  function connect() {
    clearTimeout(S.retryTimer);
    clearInterval(S.countdownTimer);
    if (!S.token || (S.ws && S.ws.readyState <= WebSocket.OPEN)) return;
    setConnection(S.attempt ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/ws`);
    S.ws = ws;
    S.authed = false;
    ws.onopen = () => {
      S.lastFrameAt = Date.now();
      ws.send(JSON.stringify({ type: "auth", token: S.token }));
    };
    ws.onmessage = (event) => {
      if (S.ws !== ws) return;
      S.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame.type === "string") onFrame(frame);
    };
    ws.onerror = () => {}; // a close event follows
    ws.onclose = (event) => {
      if (S.ws !== ws) return;
      S.ws = null;
      S.authed = false;
      stopPing();
      onClosed(event.code);
    };
  }

  async function onClosed(code) {
    if (!S.token) return;
    if (code === 4001 || code === 4003) {
      // Refused or logged out: a 401 here signs this tab out (see api()).
      try {
        await api("GET", "/me");
      } catch {
        if (!S.token) return;
      }
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimeout(S.retryTimer);
    clearInterval(S.countdownTimer);
    const base = Math.min(15000, 500 * 2 ** S.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    S.attempt += 1;
    const at = Date.now() + delay;
    const tick = () => {
      const left = Math.max(0, Math.ceil((at - Date.now()) / 1000));
      setConnection("offline", left);
    };
    tick();
    S.countdownTimer = setInterval(tick, 1000);
    S.retryTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (S.token && !S.ws) {
      S.attempt = Math.min(S.attempt, 1);
      connect();
    }
  }

  function startPing() {
    stopPing();
    S.pingTimer = setInterval(() => {
      if (Date.now() - S.lastFrameAt > DEAD_MS && S.ws) {
        S.ws.close(4000, "no answer");
        return;
      }
      wsSend({ type: "ping" });
    }, PING_MS);
  }

  function stopPing() {
    clearInterval(S.pingTimer);
  }

  function setConnection(state, seconds) {
    const banner = $("conn-banner");
    const dot = $("conn-dot");
    const text = $("conn-text");
    dot.className = `dot ${state}`;
    if (state !== S.connState && S.pending.length) render({ pane: true });
    S.connState = state;
    if (state === "online") {
      banner.hidden = true;
      text.textContent = "Online";
      document.body.classList.remove("offline");
      return;
    }
    document.body.classList.add("offline");
    banner.hidden = false;
    if (state === "offline") {
      text.textContent = "Offline";
      banner.textContent = seconds > 0 ? `Offline. Reconnecting in ${seconds} s…` : "Offline. Reconnecting…";
    } else {
      text.textContent = state === "connecting" ? "Connecting…" : "Reconnecting…";
      banner.textContent = state === "connecting" ? "Connecting…" : "Reconnecting…";
    }
  }

  // -- sending and reading ---------------------------------------------------------

  function sendPending(pending) {
    if (!S.pending.includes(pending)) return;
    pending.state = "sending";
    pending.error = null;
    wsSend({ type: "send", ref: `m:${pending.cmid}`, conversation: pending.conversation,
      body: pending.body, client_msg_id: pending.cmid });
  }

  function sendMessage() {
    const box = $("compose");
    const body = box.value;
    if (!S.openId || !body.trim()) return;
    const pending = { cmid: randomId(), conversation: S.openId, body, state: "sending", error: null };
    S.pending.push(pending);
    savePending();
    box.value = "";
    sizeComposer();
    sendPending(pending);
    render({ pane: true, scroll: "bottom" });
  }

  function markOpenRead() {
    const id = S.openId;
    if (!id || document.visibilityState !== "visible") return;
    const entry = S.entries.get(id);
    if (!entry || entry.local || (entry.read_seq >= entry.last_seq && entry.unread === 0)) return;
    const seq = entry.last_seq;
    entry.read_seq = seq;
    entry.unread = 0;
    render({ list: true });
    const frame = { type: "read", ref: `r:${++S.refs}`, conversation: id, seq };
    if (!wsSend(frame)) {
      api("POST", `/conversations/${enc(id)}/read`, { seq })
        .then((updated) => {
          mergeEntry(updated);
          render({ list: true });
        })
        .catch(() => {});
    }
  }

  // -- rendering ---------------------------------------------------------------------

  const dirty = { list: false, pane: false, members: false, scroll: null, focus: null };
  let flushQueued = false;

  // Batch renders to the end of the current task (not to an animation frame:
  // background tabs must still update their title and badges).
  function render(what) {
    if (what.list) dirty.list = true;
    if (what.pane) dirty.pane = true;
    if (what.members) dirty.members = true;
    if (what.scroll) dirty.scroll = what.scroll;
    if (what.focus) dirty.focus = what.focus;
    if (flushQueued) return;
    flushQueued = true;
    queueMicrotask(() => {
      flushQueued = false;
      if (!S.me) return;
      if (dirty.list) renderList();
      if (dirty.pane) {
        const box = $("messages");
        const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 60;
        renderPane();
        if (dirty.scroll === "bottom" || atBottom) box.scrollTop = box.scrollHeight;
      }
      if (dirty.members && S.membersOpen) renderMembers();
      if (dirty.focus) $(dirty.focus).focus();
      dirty.list = dirty.pane = dirty.members = false;
      dirty.scroll = dirty.focus = null;
    });
  }

  function preview(entry) {
    const last = entry.last_message;
    if (!last) return entry.type === "group" ? "No messages yet" : "Say hello";
    const text = last.body.replace(/\s+/g, " ");
    if (entry.type === "group") {
      const who = last.sender === S.me.id ? "You" : userName(last.sender);
      return `${who}: ${text}`;
    }
    return text;
  }

  function avatarKey(entry) {
    return entry.type === "group" ? `g${entry.group_id}` : `u${entry.peer_id}`;
  }

  function renderList() {
    const list = $("chat-list");
    const focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest(".chat") : null;
    const focusedId = focused && list.contains(focused) ? focused.dataset.id : null;
    const entries = sortedEntries();
    let total = 0;
    const items = entries.map((entry) => {
      total += entry.unread;
      const item = el("li", "chat");
      item.dataset.id = entry.id;
      item.setAttribute("role", "option");
      item.tabIndex = 0;
      item.setAttribute("aria-selected", String(entry.id === S.openId));
      if (entry.id === S.openId) item.classList.add("active");
      item.appendChild(avatar(avatarKey(entry), entry.title));
      const main = el("div", "chat-main");
      const top = el("div", "chat-top");
      top.appendChild(el("span", "chat-title", entry.title));
      top.appendChild(el("span", "chat-time", entry.last_message ? listTime(entry.updated_at) : ""));
      const bottom = el("div", "chat-bottom");
      bottom.appendChild(el("span", "chat-preview", preview(entry)));
      if (entry.unread > 0) {
        const badge = el("span", "badge", entry.unread > 99 ? "99+" : String(entry.unread));
        badge.setAttribute("aria-label", `${entry.unread} unread`);
        bottom.appendChild(badge);
      }
      main.append(top, bottom);
      item.appendChild(main);
      return item;
    });
    list.replaceChildren(...items);
    $("chat-empty").hidden = entries.length > 0;
    document.title = total > 0 ? `(${total}) tidings` : "tidings";
    if (focusedId) {
      const again = list.querySelector(`.chat[data-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
  }

  function statusFor(message, lastOwnSeq, entry) {
    if (entry.type !== "private" || message.sender !== S.me.id || message.seq !== lastOwnSeq) {
      return null;
    }
    const read = (S.peerRead[entry.id] || 0) >= message.seq;
    return el("div", read ? "status read" : "status", read ? "Read" : "Sent");
  }

  function messageNode(entry, message, options) {
    const own = message.sender === S.me.id;
    const row = el("div", `msg ${own ? "own" : "other"}${options.pending ? " pending" : ""}`);
    if (message.seq) row.dataset.seq = String(message.seq);
    row.appendChild(avatar(`u${message.sender}`, userName(message.sender), "small"));
    const column = el("div", "msg-col");
    if (!own && entry.type === "group") column.appendChild(el("div", "sender", userName(message.sender)));
    const line = el("div", "msg-line");
    const bubble = el("div", "bubble", message.body);
    if (message.sent_at) bubble.title = new Date(message.sent_at).toLocaleString();
    line.appendChild(bubble);
    if (options.status) line.appendChild(options.status);
    column.appendChild(line);
    row.appendChild(column);
    return row;
  }

  function renderPane() {
    const id = S.openId;
    const entry = id && S.entries.get(id);
    $("app").classList.toggle("show-pane", Boolean(entry));
    $("pane-empty").hidden = Boolean(entry);
    $("pane-chat").hidden = !entry;
    if (!entry) return;
    $("pane-title").textContent = entry.title;
    let sub = "";
    if (entry.type === "group") {
      const group = S.groups.get(entry.group_id);
      sub = group ? `${group.member_ids.length} members` : "";
    } else {
      const peer = user(entry.peer_id);
      sub = peer ? `@${peer.username}` : "";
    }
    $("pane-sub").textContent = sub;
    $("btn-members").hidden = entry.type !== "group";

    const c = S.convs.get(id);
    const box = $("messages");
    const nodes = [];
    if (!c || !c.loaded) {
      nodes.push(el("div", "loading", "Loading…"));
    } else {
      if (c.hasMore) nodes.push(el("div", "loading older", "Scroll up for older messages"));
      else if (c.msgs.size) nodes.push(el("div", "history-start", "Beginning of the conversation"));
      const messages = [...c.msgs.values()].sort((a, b) => a.seq - b.seq);
      let lastOwnSeq = 0;
      for (const message of messages) if (message.sender === S.me.id) lastOwnSeq = message.seq;
      for (const message of messages) {
        if (message.time_separator) {
          const timeLine = el("div", "time-line");
          timeLine.appendChild(el("span", null, lineTime(message.sent_at)));
          nodes.push(timeLine);
        }
        nodes.push(messageNode(entry, message, { status: statusFor(message, lastOwnSeq, entry) }));
      }
    }
    for (const pending of S.pending) {
      if (pending.conversation !== id) continue;
      let status;
      if (pending.state === "failed") {
        status = el("button", "status failed", `${pending.error || "Not sent"} · Retry`);
        status.type = "button";
        status.addEventListener("click", () => {
          sendPending(pending);
          savePending();
          render({ pane: true });
        });
      } else {
        status = el("div", "status sending", S.authed ? "Sending…" : "Waiting for network…");
      }
      nodes.push(messageNode(entry, { sender: S.me.id, body: pending.body, seq: 0 },
        { pending: true, status }));
    }
    box.replaceChildren(...nodes);
    if (c && c.loaded && c.hasMore && box.scrollHeight <= box.clientHeight) loadOlder(id);
  }

  function renderMembers() {
    const entry = S.openId && S.entries.get(S.openId);
    const panel = $("members");
    if (!entry || entry.type !== "group") {
      panel.hidden = true;
      S.membersOpen = false;
      return;
    }
    const group = S.groups.get(entry.group_id);
    $("members-title").textContent = group ? `Members (${group.member_ids.length})` : "Members";
    const owner = group && group.owner_id === S.me.id;
    $("members-add").hidden = !owner;
    const items = (group ? group.member_ids : []).map((id) => {
      const item = el("li", "member");
      item.appendChild(avatar(`u${id}`, userName(id), "small"));
      const name = el("span", "member-name", userName(id));
      item.appendChild(name);
      if (group.owner_id === id) item.appendChild(el("span", "tag", "Owner"));
      if (id === S.me.id) item.appendChild(el("span", "tag you", "You"));
      if (owner && id !== S.me.id) {
        const remove = el("button", "icon remove", "×");
        remove.type = "button";
        remove.title = `Remove ${userName(id)}`;
        remove.setAttribute("aria-label", `Remove ${userName(id)}`);
        remove.addEventListener("click", () => removeMember(group.id, id));
        item.appendChild(remove);
      }
      return item;
    });
    $("members-list").replaceChildren(...items);
  }

  function notice(text) {
    const box = el("div", "toast", text);
    box.setAttribute("role", "status");
    document.body.appendChild(box);
    setTimeout(() => box.remove(), 4000);
  }

  // -- navigation ------------------------------------------------------------------

  function routeId() {
    const match = /^#\/([pg]:[0-9-]+)$/.exec(location.hash);
    return match ? match[1] : null;
  }

  function openConversation(id) {
    if (routeId() !== id) location.hash = `#/${id}`;
    else showConversation(id);
  }

  function showConversation(id) {
    const changed = S.openId !== id;
    S.openId = id;
    const entry = S.entries.get(id);
    if (!entry) return;
    if (changed) {
      S.membersOpen = false;
      $("members").hidden = true;
      $("compose").value = "";
      sizeComposer();
    }
    if (entry.type === "group") loadGroup(entry.group_id);
    else user(entry.peer_id);
    render({ list: true, pane: true, scroll: "bottom" });
    loadLatest(id);
    markOpenRead();
    if (changed && window.matchMedia("(min-width: 721px)").matches) {
      $("compose").focus();
    } else if (changed && document.activeElement && document.activeElement.closest(".sidebar")) {
      // Phone: the list goes away; keep the keyboard's place without popping one up.
      render({ focus: "messages" });
    }
  }

  function closeConversation() {
    S.openId = null;
    S.membersOpen = false;
    $("members").hidden = true;
    if (routeId()) history.replaceState(null, "", location.pathname);
    render({ list: true, pane: true });
  }

  async function openFromRoute() {
    const id = routeId();
    if (!id) {
      if (S.openId) closeConversation();
      return;
    }
    if (!S.entries.has(id)) {
      const entry = await fetchEntry(id);
      if (!entry) {
        closeConversation();
        return;
      }
    }
    showConversation(id);
  }

  // -- dialogs and group management ---------------------------------------------------

  async function startPrivateChat(event) {
    event.preventDefault();
    const error = $("chat-error");
    error.textContent = "";
    try {
      const peer = await resolveUser($("chat-user").value);
      if (peer.id === S.me.id) throw new ApiError(422, "bad_request", "That is you. Pick someone else.");
      const id = privateId(S.me.id, peer.id);
      if (!S.entries.has(id)) {
        S.entries.set(id, { id, type: "private", title: peer.display_name, peer_id: peer.id,
          group_id: null, unread: 0, last_seq: 0, read_seq: 0, last_message: null,
          updated_at: new Date().toISOString(), local: true });
      }
      $("dlg-chat").close();
      openConversation(id);
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  async function createGroup(event) {
    event.preventDefault();
    const error = $("group-error");
    error.textContent = "";
    const name = $("group-name").value.trim();
    if (!name) {
      error.textContent = "Give the group a name.";
      return;
    }
    try {
      const wanted = $("group-members").value.split(/[,\s]+/).filter(Boolean);
      const ids = [];
      for (const text of wanted) {
        const found = await resolveUser(text);
        if (found.id !== S.me.id && !ids.includes(found.id)) ids.push(found.id);
      }
      const group = await api("POST", "/groups", { name, member_ids: ids });
      S.groups.set(group.id, group);
      const id = `g:${group.id}`;
      if (!S.entries.has(id)) await fetchEntry(id);
      $("dlg-group").close();
      openConversation(id);
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  async function addMember(event) {
    event.preventDefault();
    const entry = S.entries.get(S.openId);
    const input = $("members-add-input");
    $("members-error").textContent = "";
    if (!entry || !input.value.trim()) return;
    try {
      const found = await resolveUser(input.value);
      const group = await api("POST", `/groups/${entry.group_id}/members`, { user_id: found.id });
      S.groups.set(group.id, group);
      input.value = "";
      render({ pane: true, members: true });
    } catch (failure) {
      $("members-error").textContent = failure.message;
    }
  }

  async function removeMember(groupId, userId) {
    $("members-error").textContent = "";
    try {
      await api("DELETE", `/groups/${groupId}/members/${userId}`);
      if (userId === S.me.id) {
        dropConversation(`g:${groupId}`, false);
        return;
      }
      await loadGroup(groupId);
    } catch (failure) {
      $("members-error").textContent = failure.message;
    }
  }

  let leaveArmed = 0;
  function leaveGroup() {
    const entry = S.entries.get(S.openId);
    const button = $("btn-leave");
    if (!entry || entry.type !== "group") return;
    if (!leaveArmed) {
      button.textContent = "Click again to leave";
      leaveArmed = setTimeout(() => {
        leaveArmed = 0;
        button.textContent = "Leave group";
      }, 4000);
      return;
    }
    clearTimeout(leaveArmed);
    leaveArmed = 0;
    button.textContent = "Leave group";
    removeMember(entry.group_id, S.me.id);
  }

  function toggleMembers() {
    S.membersOpen = !S.membersOpen;
    $("members").hidden = !S.membersOpen;
    if (S.membersOpen) {
      $("members-error").textContent = "";
      const entry = S.entries.get(S.openId);
      if (entry && entry.group_id) loadGroup(entry.group_id);
      renderMembers();
      $("btn-members-close").focus();
    } else {
      $("btn-members").focus();
    }
  }

  // -- sign in, sign up, sign out ----------------------------------------------------

  let signUpMode = false;

  function setAuthMode(signUp) {
    signUpMode = signUp;
    $("auth-title").textContent = signUp ? "Create your tidings account" : "Sign in to tidings";
    $("auth-submit").textContent = signUp ? "Sign up" : "Sign in";
    $("auth-display-row").hidden = !signUp;
    $("auth-switch-text").textContent = signUp ? "Have an account?" : "New here?";
    $("auth-switch").textContent = signUp ? "Sign in" : "Create an account";
    $("auth-password").autocomplete = signUp ? "new-password" : "current-password";
    $("auth-error").textContent = "";
  }

  async function submitAuth(event) {
    event.preventDefault();
    const username = $("auth-username").value.trim();
    const password = $("auth-password").value;
    const error = $("auth-error");
    error.textContent = "";
    if (username.length < 3 || password.length < 8) {
      error.textContent = "A username of 3 or more characters and a password of 8 or more.";
      return;
    }
    $("auth-submit").disabled = true;
    try {
      if (signUpMode) {
        const display = $("auth-display").value.trim();
        await api("POST", "/users", display ? { username, password, display_name: display }
          : { username, password });
      }
      const session = await api("POST", "/sessions", { username, password });
      $("auth-password").value = "";
      save(localStorage, "tidings.session", { token: session.token, user: session.user });
      startSession(session.token, session.user);
    } catch (failure) {
      error.textContent = failure.code === "username_taken" ? "That username is taken."
        : failure.code === "unauthorized" ? "Wrong username or password." : failure.message;
    } finally {
      $("auth-submit").disabled = false;
    }
  }

  function startSession(token, me) {
    S.token = token;
    S.me = me;
    S.users.set(me.id, me);
    S.pending = load(sessionStorage, pendingKey(), []);
    S.peerRead = load(localStorage, peerReadKey(), {});
    $("auth").hidden = true;
    $("app").hidden = false;
    $("me-name").textContent = me.display_name;
    $("me-name").title = `@${me.username} · id ${me.id}`;
    const mine = avatar(`u${me.id}`, me.display_name);
    $("me-avatar").replaceWith(mine);
    mine.id = "me-avatar";
    render({ list: true, pane: true });
    connect();
    if (routeId()) openFromRoute();
  }

  function resetState() {
    const ws = S.ws;
    S.token = null;
    S.ws = null;
    S.authed = false;
    if (ws) ws.close(1000, "signed out");
    clearTimeout(S.retryTimer);
    clearInterval(S.countdownTimer);
    stopPing();
    S.entries.clear();
    S.convs.clear();
    S.groups.clear();
    S.pending = [];
    S.openId = null;
    S.attempt = 0;
    S.me = null;
    document.title = "tidings";
    $("chat-list").replaceChildren();
    $("messages").replaceChildren();
    $("app").classList.remove("show-pane");
    if (routeId()) history.replaceState(null, "", location.pathname);
    localStorage.removeItem("tidings.session");
    $("app").hidden = true;
    $("auth").hidden = false;
    $("members").hidden = true;
  }

  function signedOut(message) {
    if (!S.token) return;
    resetState();
    setAuthMode(false);
    $("auth-error").textContent = message || "";
    $("auth-username").focus();
  }

  async function signOut() {
    const token = S.token;
    if (S.me) sessionStorage.removeItem(pendingKey());
    resetState();
    setAuthMode(false);
    $("auth-username").focus();
    try {
      await fetch(`${API}/sessions/current`, { method: "DELETE",
        headers: { Authorization: `Bearer ${token}` } });
    } catch {
      // offline: the token dies with its storage here anyway
    }
  }

  // -- composer -----------------------------------------------------------------------

  function sizeComposer() {
    const box = $("compose");
    box.style.height = "auto";
    box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
  }

  // -- wiring -------------------------------------------------------------------------

  function chatFromEvent(event) {
    const item = event.target.closest(".chat");
    return item ? item.dataset.id : null;
  }

  function wire() {
    $("auth-form").addEventListener("submit", submitAuth);
    $("auth-switch").addEventListener("click", () => setAuthMode(!signUpMode));
    $("btn-signout").addEventListener("click", signOut);
    $("btn-new-chat").addEventListener("click", () => {
      $("chat-user").value = "";
      $("chat-error").textContent = "";
      $("dlg-chat").showModal();
    });
    $("btn-new-group").addEventListener("click", () => {
      $("group-name").value = "";
      $("group-members").value = "";
      $("group-error").textContent = "";
      $("dlg-group").showModal();
    });
    for (const button of document.querySelectorAll("dialog [data-close]")) {
      button.addEventListener("click", () => button.closest("dialog").close());
    }
    $("form-chat").addEventListener("submit", startPrivateChat);
    $("form-group").addEventListener("submit", createGroup);

    const list = $("chat-list");
    list.addEventListener("click", (event) => {
      const id = chatFromEvent(event);
      if (id) openConversation(id);
    });
    list.addEventListener("keydown", (event) => {
      const item = event.target.closest(".chat");
      if (!item) return;
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        openConversation(item.dataset.id);
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const next = event.key === "ArrowDown" ? item.nextElementSibling : item.previousElementSibling;
        if (next) next.focus();
      }
    });

    $("btn-back").addEventListener("click", () => {
      const id = S.openId;
      closeConversation();
      $("app").classList.remove("show-pane"); // now, so the row below can take the focus
      const item = id && list.querySelector(`.chat[data-id="${CSS.escape(id)}"]`);
      if (item) item.focus();
    });
    $("btn-members").addEventListener("click", toggleMembers);
    $("btn-members-close").addEventListener("click", toggleMembers);
    $("members-add").addEventListener("submit", addMember);
    $("btn-leave").addEventListener("click", leaveGroup);

    const compose = $("compose");
    compose.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendMessage();
      } else if (event.key === "Escape" && S.openId) {
        compose.blur();
      }
    });
    compose.addEventListener("input", sizeComposer);
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      sendMessage();
      compose.focus();
    });

    const box = $("messages");
    box.addEventListener("scroll", () => {
      if (box.scrollTop < 80 && S.openId) loadOlder(S.openId);
    });

    window.addEventListener("hashchange", () => {
      if (S.token) openFromRoute();
    });
    window.addEventListener("online", reconnectNow);
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") {
        markOpenRead();
        reconnectNow();
      }
    });
    window.addEventListener("focus", markOpenRead);
    // Another tab signed out (or in as someone else): follow it.
    window.addEventListener("storage", (event) => {
      if (event.key !== "tidings.session") return;
      const session = load(localStorage, "tidings.session", null);
      if (!session && S.token) signedOut("You signed out in another tab.");
      else if (session && (!S.me || session.user.id !== S.me.id)) location.reload();
    });
  }

  function main() {
    wire();
    const session = load(localStorage, "tidings.session", null);
    if (session && session.token && session.user) {
      startSession(session.token, session.user);
    } else {
      setAuthMode(false);
      $("auth").hidden = false;
      $("auth-username").focus();
    }
  }

  main();
})();
