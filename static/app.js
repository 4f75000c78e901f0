// wschat's chat page: plain JavaScript, no build step, no libraries.
//
// How to read it: `state` below is everything the page knows; `connect()` opens one WebSocket to
// /ws for the current room; `onEvent()` is the one place each server event is handled; the
// `render*`/`notice` functions turn events into DOM nodes. Two rules hold throughout:
//
// 1. Every string that came from a user (nicknames, room names, message text) reaches the page
//    through `textContent` or a form control's `value`, never `innerHTML`, so `<img onerror=...>`
//    in a message is shown as those characters and runs nothing. (The server's
//    Content-Security-Policy forbids inline script as a second line of defence.)
// 2. Nothing is lost across a dropped connection: the page remembers the id of the last message it
//    showed (`state.cursor`) and reconnects with `since=<that id>`, so the server replays exactly
//    the messages it missed; messages are also dropped if their id is not above the cursor, so a
//    replay can never show one twice.
//
// A server started with a token key (README, "Authentication") says so in `GET /limits`; the page
// then sends a signed token with each connection instead of a name (see "Tokens" below).
'use strict';

(function () {
  // ---------------------------------------------------------------------------------------------
  // Limits and timings. The server validates names and rooms too (400 before the upgrade); the
  // page checks first so a typo gets a helpful message rather than a refused connection.

  /**
   * What this server accepts, from `GET /limits` (its `--max-room-len`, `--max-name-len` and
   * `--max-text-len`), so the page and the server never disagree. The values here are only the
   * server's defaults, used until it answers.
   */
  const limits = { max_room_len: 64, max_name_len: 32, max_text_len: 4096 };
  /** Whether the server requires a signed token (`"auth": true` in `GET /limits`). */
  let authRequired = false;
  /** Where the token is kept for this tab (it survives a reload, not the tab). Not localStorage:
   *  a token is a short-lived credential, not a preference. */
  const STORAGE_TOKEN = 'wschat.token';
  /** The close code the server sends when the token expires while connected (README). */
  const CLOSE_TOKEN_EXPIRED = 4001;
  /** Room names the server accepts: letters, digits, '-', '_', '.' (not only dots). */
  const ROOM_CHARS = /^[A-Za-z0-9._-]+$/;
  /** Control characters (C0, DEL, C1) are not printable, so not allowed in a nickname. */
  const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
  /** Send at most one "typing" event per this many ms: the server fans each one out to the room. */
  const TYPING_SEND_INTERVAL_MS = 2000;
  /** A typing hint stays this long after that person's last typing event, then fades. */
  const TYPING_SHOW_MS = 4000;
  /** Reconnect backoff: the first retry waits about this long, doubling per failure... */
  const BACKOFF_BASE_MS = 500;
  /** ...up to this cap, so a long outage costs one attempt per ~15 s, not a storm. */
  const BACKOFF_MAX_MS = 15000;
  /** Within this many pixels of the bottom the reader counts as "at the bottom". */
  const STICKY_PX = 48;
  /** Entries kept in the log; older ones are removed so a tab left open for days stays light. */
  const MAX_LOG_ENTRIES = 1000;
  /** Names drawn in the "Online" list; a huge room shows the count and "and N more". */
  const MAX_LISTED_USERS = 200;
  /** Consecutive messages from one person within this window are grouped under one name. */
  const GROUP_WINDOW_MS = 5 * 60 * 1000;

  // ---------------------------------------------------------------------------------------------
  // Elements, looked up once.

  const $ = (id) => document.getElementById(id);
  const els = {
    joinForm: $('join-form'),
    nameInput: $('name-input'),
    roomInput: $('room-input'),
    recentRooms: $('recent-rooms'),
    status: $('status'),
    statusText: $('status-text'),
    retry: $('retry'),
    roomTitle: $('room-title'),
    log: $('log'),
    jump: $('jump'),
    typing: $('typing'),
    sendForm: $('send-form'),
    message: $('message-input'),
    sendHint: $('send-hint'),
    userCount: $('user-count'),
    users: $('users'),
    tokenForm: $('token-form'),
    tokenWhy: $('token-why'),
    tokenInput: $('token-input'),
  };

  // ---------------------------------------------------------------------------------------------
  // State: everything the page knows.

  const state = {
    /** The room shown, and the one the socket is for. */
    room: 'lobby',
    /** The nickname the user asked for ('' lets the server pick a guest-<n> name). */
    name: '',
    /** The nickname the server confirmed in its welcome; reused on reconnect to keep it. */
    you: null,
    /** The current WebSocket, or null between attempts. Events from any other socket (an old
     *  one still closing after a room switch) are ignored by comparing against this. */
    socket: null,
    /** Id of the newest message shown in this room; null until the first welcome. This is the
     *  `since=` of every reconnect, and the dedupe rule: a message with id <= cursor is old. */
    cursor: null,
    /** The room's epoch from the last welcome (which life of the room `cursor` counts in); sent
     *  back as `epoch=` beside `since=`, so a room that started afresh is known for certain. */
    epoch: null,
    /** Failed attempts in a row, for the backoff. Reset by a welcome, not by `open`: a server
     *  that accepts and then closes at once must still be backed off from. */
    attempt: 0,
    /** Timer of the scheduled reconnect, if any. */
    retryTimer: 0,
    /** Who is online: nicknames in this room. */
    users: new Set(),
    /** Total online as the server counts it (large rooms list only some names). */
    count: 0,
    /** Nickname -> timer that hides their typing hint. */
    typers: new Map(),
    /** When we last sent a typing event (ms since epoch). */
    lastTypingSent: 0,
    /** Author and time of the last message drawn, for grouping. */
    lastAuthor: null,
    lastTs: 0,
    /** No reconnect before this time (ms since epoch); only the test hook sets it. */
    holdUntil: 0,
    /** The signed token sent with each connection when the server requires one, else null. */
    token: null,
  };

  /** Counters the browser tests read through `window.wschatDebug` (see the end of the file). */
  const stats = { connects: 0, welcomes: 0, duplicatesDropped: 0, replayed: 0 };

  // ---------------------------------------------------------------------------------------------
  // The connection.

  /** Opens a WebSocket for `state.room`, replacing any current one. */
  function connect() {
    clearTimeout(state.retryTimer);
    els.retry.hidden = true;

    const params = new URLSearchParams({ room: state.room });
    if (authRequired) {
      // The token names us; `name` would be ignored by the server.
      if (!state.token) {
        askForToken('This server needs a token to join.');
        return;
      }
      params.set('token', state.token);
    } else {
      const name = state.you || state.name;
      if (name) params.set('name', name);
    }
    // Resume where we left off. A cursor of 0 is meaningful too ("I have seen nothing, the room
    // was empty"): the server then replays everything sent while we were away.
    if (state.cursor !== null) params.set('since', String(state.cursor));
    if (state.cursor !== null && state.epoch) params.set('epoch', state.epoch);

    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws?${params}`);
    state.socket = ws;
    stats.connects += 1;
    setStatus(state.attempt === 0 ? 'connecting' : 'reconnecting', 'Connecting…');

    let opened = false;
    ws.addEventListener('open', () => {
      opened = true;
    });
    ws.addEventListener('message', (event) => {
      if (ws !== state.socket) return;
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return; // The server only sends JSON; ignore anything else rather than break the page.
      }
      if (data && typeof data.type === 'string') onEvent(data);
    });
    // `error` is always followed by `close`, which does the work.
    ws.addEventListener('close', (event) => {
      if (ws !== state.socket) return;
      state.socket = null;
      if (authRequired && event.code === CLOSE_TOKEN_EXPIRED) {
        askForToken('Your token expired. Paste a fresh one to carry on.');
      } else if (authRequired && !opened) {
        explainRefusal(event);
      } else {
        scheduleReconnect(event);
      }
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Tokens (only when the server requires them).

  /** Forgets the token and asks for another, saying why. Nothing reconnects until one is given:
   *  retrying a refused token would only be refused again. */
  function askForToken(why) {
    state.token = null;
    sessionStorage.removeItem(STORAGE_TOKEN);
    clearTimeout(state.retryTimer);
    els.retry.hidden = true;
    els.tokenWhy.textContent = why;
    els.tokenForm.hidden = false;
    setStatus('reconnecting', 'Waiting for a token');
    els.tokenInput.focus();
  }

  /** The handshake was refused or the server is unreachable: a browser is not told which, nor
   *  the status. `GET /auth/check` answers what the upgrade did (204, or 401/403 and a reason),
   *  so a refused token is explained in words and anything else is retried as usual. */
  async function explainRefusal(event) {
    const token = state.token;
    let response = null;
    try {
      const query = new URLSearchParams({ room: state.room });
      response = await fetch(`/auth/check?${query}`, {
        headers: { Authorization: `Bearer ${token}` },
        cache: 'no-store',
      });
    } catch {
      // Unreachable: retry as for any dropped connection.
    }
    if (token !== state.token || state.socket !== null) return; // Superseded meanwhile.
    if (response && (response.status === 401 || response.status === 403)) {
      const reason = (await response.text()).trim();
      const what = response.status === 401 ? 'The server refused your token' : 'Not allowed here';
      askForToken(`${what}: ${reason} (${response.status}).`);
    } else {
      scheduleReconnect(event);
    }
  }

  /** A token given in the address (`#room&token=...` or `#token=...`): kept for this tab, and
   *  taken out of the address bar and the history at once, so it is not bookmarked or shared
   *  with the link. */
  function takeTokenFromHash() {
    if (!authRequired) return;
    const parts = location.hash.slice(1).split('&');
    const at = parts.findIndex((part) => part.startsWith('token='));
    if (at < 0) return;
    let token = parts[at].slice('token='.length);
    try {
      token = decodeURIComponent(token);
    } catch {
      // Left as it is; the server will say it is not well-formed.
    }
    parts.splice(at, 1);
    history.replaceState(null, '', `#${parts.join('&')}`);
    useToken(token);
  }

  function useToken(token) {
    state.token = token || null;
    if (state.token) sessionStorage.setItem(STORAGE_TOKEN, state.token);
    els.tokenForm.hidden = true;
  }

  els.tokenForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = els.tokenInput.value.trim();
    els.tokenInput.value = '';
    if (!token) return;
    useToken(token);
    reconnectNow();
  });

  /** Closes the current socket on purpose (room switch, rename) and connects afresh. */
  function reconnectNow() {
    const old = state.socket;
    state.socket = null; // Its close event is now ignored.
    if (old) old.close(1000, 'reconnecting');
    state.attempt = 0;
    connect();
  }

  /** Delay before retry number `attempt` (0-based): exponential, capped, with "equal jitter"
   *  (half fixed, half random), so a server restart is not met by every page at the same
   *  instant, yet no page retries sooner than half its step. */
  function backoffDelay(attempt) {
    const step = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 16));
    return step / 2 + Math.random() * (step / 2);
  }

  function scheduleReconnect(event) {
    const delay = Math.max(backoffDelay(state.attempt), state.holdUntil - Date.now());
    state.attempt += 1;
    // Typing hints from before the drop would otherwise linger for a connection we no longer have.
    clearTypers();
    const why = event.code === 1001 ? 'The server went away' : 'Disconnected';
    setStatus('reconnecting', `${why}. Reconnecting in ${Math.ceil(delay / 1000)} s…`);
    els.retry.hidden = false;
    state.retryTimer = setTimeout(connect, delay);
  }

  /** Sends one protocol object; false when not connected (the caller keeps the user's text). */
  function send(obj) {
    const ws = state.socket;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Server events: the one place each `type` is handled.

  function onEvent(ev) {
    switch (ev.type) {
      case 'welcome':
        onWelcome(ev);
        break;
      case 'message':
        if (ev.room === undefined || ev.room === state.room) acceptMessage(ev);
        break;
      case 'join':
        if (!state.users.has(ev.name)) {
          state.users.add(ev.name);
          state.count += 1;
        }
        renderUsers();
        // Our own arrival is already told by the status line.
        if (ev.name !== state.you) notice(`${ev.name} joined`, 'join');
        break;
      case 'leave':
        if (state.users.delete(ev.name)) state.count = Math.max(0, state.count - 1);
        stopTyping(ev.name);
        renderUsers();
        notice(`${ev.name} left`, 'leave');
        break;
      case 'presence':
        // Large rooms: arrivals and departures coalesced, with the authoritative count. No notice
        // per person here: in a room of hundreds they would drown the conversation.
        for (const name of ev.joined || []) state.users.add(name);
        for (const name of ev.left || []) {
          state.users.delete(name);
          stopTyping(name);
        }
        if (typeof ev.count === 'number') {
          state.count = ev.count;
          // Each list names at most 100 people (`joined_count` and `left_count` say how many
          // there were). When some who left went unnamed, the list may hold names no longer here:
          // keep it no longer than the count. It is a partial view anyway ("and N more").
          if ((ev.left_count || 0) > (ev.left || []).length) {
            for (const name of [...state.users]) {
              if (state.users.size <= state.count) break;
              if (name !== state.you) state.users.delete(name);
            }
          }
        }
        renderUsers();
        break;
      case 'typing':
        startTyping(ev.name);
        break;
      case 'lagged':
        // The server skipped events we were too slow to take. Messages among them are still in
        // the room's history, so reconnecting with our cursor fetches them.
        notice(`Fell behind by ${ev.missed} events; catching up…`, 'gap');
        reconnectNow();
        break;
      case 'truncated':
        // The room started a new life while the server was cut off from Redis (which lost its
        // data): ids start again from 1 in the new epoch, and its messages follow this event.
        if (typeof ev.epoch === 'string') state.epoch = ev.epoch;
        state.cursor = 0;
        notice('The room started afresh on the server; some messages may be missing.', 'gap');
        break;
      case 'error':
        showHint(`The server refused that: ${ev.message || ev.code}`);
        break;
      default:
        // Unknown events are ignored so a newer server does not break an older page.
        break;
    }
  }

  function onWelcome(ev) {
    stats.welcomes += 1;
    state.attempt = 0;
    state.you = ev.you;
    state.users = new Set(ev.users || []);
    state.count = typeof ev.count === 'number' ? ev.count : state.users.size;
    const lastId = typeof ev.last_id === 'number' ? ev.last_id : 0;
    const resumed = state.cursor !== null;

    const otherLife = resumed && state.epoch && ev.epoch && ev.epoch !== state.epoch;
    if (typeof ev.epoch === 'string') state.epoch = ev.epoch;

    if (otherLife || (resumed && lastId < state.cursor)) {
      // Ids went backwards: the room started over while we were away (the server restarted, or
      // everyone left and the room was dropped; history lives in the server's memory) and is
      // numbered from 1 again. Seeing a `since` beyond its last id, the server sent all the
      // history it has; restart our cursor so those ids, and new ones, are shown.
      notice('The room started afresh while you were away; some messages may be missing.', 'gap');
      state.cursor = 0;
    } else if (resumed && ev.truncated) {
      notice('You were away longer than the room keeps messages; some are missing.', 'gap');
    }

    for (const m of ev.history || []) {
      if (acceptMessage(m) && resumed) stats.replayed += 1;
    }
    state.cursor = Math.max(state.cursor ?? 0, lastId);

    renderUsers();
    setStatus('online', `Connected as ${ev.you}`);
    if (!els.nameInput.value && document.activeElement !== els.nameInput) {
      els.nameInput.placeholder = ev.you;
    }
  }

  /** Shows a message unless it is one we already have; true if shown. */
  function acceptMessage(m) {
    if (typeof m.id !== 'number') return false;
    if (state.cursor !== null && m.id <= state.cursor) {
      stats.duplicatesDropped += 1;
      return false;
    }
    state.cursor = m.id;
    stopTyping(m.from);
    renderMessage(m);
    return true;
  }

  // ---------------------------------------------------------------------------------------------
  // Rendering. Only `textContent`, `value` and DOM construction: never `innerHTML`.

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  });
  const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

  /** A `<time>` in the reader's local time zone: hours and minutes today, the date before. */
  function timeElement(ts) {
    const date = new Date(ts);
    const el = document.createElement('time');
    el.dateTime = date.toISOString();
    el.title = fullFormat.format(date);
    const today = new Date().toDateString() === date.toDateString();
    el.textContent = (today ? timeFormat : dateTimeFormat).format(date);
    return el;
  }

  /** A stable colour per nickname (a hue from a string hash), set through CSSOM, which the
   *  Content-Security-Policy allows, unlike a `style` attribute. */
  function nameHue(name) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
    return h;
  }

  function renderMessage(m) {
    const li = document.createElement('li');
    li.className = 'msg';
    li.dataset.id = String(m.id);
    const mine = m.from === state.you;
    if (mine) li.classList.add('mine');
    const ts = typeof m.ts === 'number' ? m.ts : Date.now();
    // Grouping: a run of messages from one person only names them once.
    if (m.from === state.lastAuthor && ts - state.lastTs < GROUP_WINDOW_MS) {
      li.classList.add('continued');
    }
    state.lastAuthor = m.from;
    state.lastTs = ts;

    const from = document.createElement('span');
    from.className = 'from';
    from.textContent = m.from;
    from.style.setProperty('--hue', String(nameHue(String(m.from))));

    const text = document.createElement('p');
    text.className = 'text';
    text.textContent = m.text;

    li.append(from, timeElement(ts), text);
    // Your own message always scrolls into view: you just sent it.
    appendToLog(li, mine);
  }

  /** A one-line notice in the log: joins, leaves, gaps, errors. */
  function notice(text, kind) {
    const li = document.createElement('li');
    li.className = `notice ${kind}`;
    li.textContent = text;
    state.lastAuthor = null; // The next message starts a new group.
    appendToLog(li, false);
  }

  function isNearBottom() {
    const log = els.log;
    return log.scrollHeight - log.scrollTop - log.clientHeight <= STICKY_PX;
  }

  function scrollToBottom() {
    els.log.scrollTop = els.log.scrollHeight;
    els.jump.hidden = true;
  }

  /** Appends to the log and keeps the reader where they were: at the bottom if they were there
   *  (the chat follows), otherwise untouched with a "new messages" button to jump down. */
  function appendToLog(node, forceScroll) {
    const stick = forceScroll || isNearBottom();
    els.log.append(node);
    while (els.log.childElementCount > MAX_LOG_ENTRIES) els.log.firstElementChild.remove();
    if (stick) scrollToBottom();
    else els.jump.hidden = false;
  }

  function renderUsers() {
    const names = [...state.users].sort((a, b) => a.localeCompare(b));
    const items = names.slice(0, MAX_LISTED_USERS).map((name) => {
      const li = document.createElement('li');
      li.textContent = name;
      li.style.setProperty('--hue', String(nameHue(name)));
      if (name === state.you) {
        li.classList.add('me');
        li.title = 'you';
      }
      return li;
    });
    const count = Math.max(state.count, state.users.size);
    const unlisted = count - items.length;
    if (unlisted > 0) {
      const more = document.createElement('li');
      more.className = 'more';
      more.textContent = `and ${unlisted} more`;
      items.push(more);
    }
    els.users.replaceChildren(...items);
    els.userCount.textContent = String(count);
  }

  function startTyping(name) {
    if (!name || name === state.you) return;
    clearTimeout(state.typers.get(name));
    state.typers.set(name, setTimeout(() => stopTyping(name), TYPING_SHOW_MS));
    renderTyping();
  }

  function stopTyping(name) {
    if (!state.typers.has(name)) return;
    clearTimeout(state.typers.get(name));
    state.typers.delete(name);
    renderTyping();
  }

  function clearTypers() {
    for (const timer of state.typers.values()) clearTimeout(timer);
    state.typers.clear();
    renderTyping();
  }

  function renderTyping() {
    const names = [...state.typers.keys()];
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names.length} people are typing…`;
    // The text stays while the hint fades out (a CSS opacity transition on `.visible`).
    if (text) els.typing.textContent = text;
    els.typing.classList.toggle('visible', text !== '');
  }

  /** The connection indicator: `state` is a CSS hook (and what the browser tests wait on). */
  function setStatus(stateName, text) {
    els.status.dataset.state = stateName;
    document.body.dataset.connection = stateName; // Lets CSS dim what may be stale.
    els.statusText.textContent = text;
  }

  let hintTimer = 0;
  /** A short message under the message box, e.g. "not connected, your text is kept". */
  function showHint(text) {
    els.sendHint.textContent = text;
    clearTimeout(hintTimer);
    hintTimer = setTimeout(() => {
      els.sendHint.textContent = '';
    }, 6000);
  }

  // ---------------------------------------------------------------------------------------------
  // Rooms and nicknames. The room lives in the address (/#room); changing either the address or
  // the form moves the page to that room.

  const STORAGE_NAME = 'wschat.name';
  const STORAGE_ROOMS = 'wschat.rooms';

  /** localStorage can throw (disabled storage, private modes); the page works without it. */
  function load(key, fallback) {
    try {
      const v = localStorage.getItem(key);
      return v === null ? fallback : v;
    } catch {
      return fallback;
    }
  }
  function save(key, value) {
    try {
      localStorage.setItem(key, value);
    } catch {
      /* Not remembered; nothing else depends on it. */
    }
  }

  function roomFromHash() {
    let raw = location.hash.slice(1);
    try {
      raw = decodeURIComponent(raw);
    } catch {
      return null;
    }
    return roomOk(raw) ? raw : null;
  }

  function validName(name) {
    const max = limits.max_name_len;
    if ([...name].length > max) return `A nickname has at most ${max} characters.`;
    if (CONTROL_CHARS.test(name)) return 'A nickname cannot contain control characters.';
    return '';
  }

  function roomOk(room) {
    return room.length >= 1 && room.length <= limits.max_room_len && ROOM_CHARS.test(room)
      && !/^\.+$/.test(room);
  }

  function validRoom(room) {
    return roomOk(room)
      ? ''
      : `A room name is 1–${limits.max_room_len} letters, digits, '-', '_' or '.'.`;
  }

  function recentRooms() {
    return load(STORAGE_ROOMS, 'lobby').split(' ').filter(roomOk);
  }

  function rememberRoom(room) {
    const rooms = [room, ...recentRooms().filter((r) => r !== room)].slice(0, 8);
    save(STORAGE_ROOMS, rooms.join(' '));
    els.recentRooms.replaceChildren(
      ...rooms.map((r) => {
        const option = document.createElement('option');
        option.value = r;
        return option;
      }),
    );
  }

  /** Leaves the current room (if any) and enters `room` with a clean slate. */
  function enterRoom(room) {
    state.room = room;
    state.cursor = null;
    state.epoch = null;
    state.users = new Set();
    state.count = 0;
    state.lastAuthor = null;
    clearTypers();
    els.log.replaceChildren();
    els.jump.hidden = true;
    renderUsers();
    els.roomInput.value = room;
    els.roomTitle.textContent = `#${room}`;
    document.title = `#${room} · wschat`;
    rememberRoom(room);
    reconnectNow();
  }

  els.joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = els.nameInput.value.trim();
    const room = els.roomInput.value.trim() || 'lobby';
    els.nameInput.setCustomValidity(validName(name));
    els.roomInput.setCustomValidity(validRoom(room));
    if (!els.joinForm.reportValidity()) return;

    const renamed = name !== state.name;
    state.name = name;
    save(STORAGE_NAME, name);
    if (renamed) state.you = null;

    if (room !== state.room) {
      // Changing the hash adds a history entry (Back returns to the previous room) and fires
      // `hashchange`, which does the switch: one code path for links, Back and this form.
      location.hash = encodeURIComponent(room);
    } else if (renamed) {
      // Same room, new name: reconnect, keeping the log and cursor, so nothing is shown twice.
      reconnectNow();
    }
    els.message.focus();
  });

  // Clear a validation message as soon as the user edits the field.
  for (const input of [els.nameInput, els.roomInput]) {
    input.addEventListener('input', () => input.setCustomValidity(''));
  }

  window.addEventListener('hashchange', () => {
    const hadToken = state.token;
    takeTokenFromHash();
    const room = roomFromHash();
    if (room === null) {
      history.replaceState(null, '', `#${encodeURIComponent(state.room)}`);
    } else if (room !== state.room) {
      enterRoom(room);
    } else if (state.token !== hadToken) {
      reconnectNow();
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Writing: Enter sends, Shift+Enter is a new line, and typing tells the room (throttled).

  els.message.addEventListener('keydown', (event) => {
    // isComposing: Enter that confirms an IME composition (Japanese, Chinese...) must not send.
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      els.sendForm.requestSubmit();
    }
  });

  els.message.addEventListener('input', () => {
    autosize();
    const now = Date.now();
    if (els.message.value.trim() !== '' && now - state.lastTypingSent >= TYPING_SEND_INTERVAL_MS) {
      if (send({ type: 'typing' })) state.lastTypingSent = now;
    }
  });

  els.sendForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = els.message.value.trim();
    if (text === '') return;
    if (new TextEncoder().encode(text).length > limits.max_text_len) {
      showHint(`That is too long: a message holds at most ${limits.max_text_len} bytes.`);
      return;
    }
    if (!send({ type: 'message', text })) {
      showHint('Not connected right now; your message is still in the box.');
      return;
    }
    els.message.value = '';
    state.lastTypingSent = 0; // The next keystroke may announce typing again at once.
    autosize();
    els.message.focus();
  });

  /** Grows the message box with its content (CSS caps the height). */
  function autosize() {
    els.message.style.height = 'auto';
    els.message.style.height = `${els.message.scrollHeight}px`;
  }

  // ---------------------------------------------------------------------------------------------
  // Scrolling and connection controls.

  els.log.addEventListener('scroll', () => {
    if (isNearBottom()) els.jump.hidden = true;
  });
  els.jump.addEventListener('click', () => {
    scrollToBottom();
    els.message.focus();
  });
  els.retry.addEventListener('click', () => {
    state.attempt = 0;
    connect();
  });
  // Back online after a network change: no reason to sit out the rest of the backoff.
  window.addEventListener('online', () => {
    if (state.socket === null) connect();
  });

  // ---------------------------------------------------------------------------------------------
  // Test hook, used by the browser tests (tests/browser_chat.rs) and handy in the console:
  // `wschatDebug.dropSocket(ms)` closes the socket as a network drop would look to the page, which
  // then reconnects by itself, not sooner than `ms` later (so a test knows messages sent in that
  // window were missed live); `wschatDebug.stats()` returns the counters above;
  // `wschatDebug.extensions()` what the socket negotiated (permessage-deflate, in Chromium). It changes nothing
  // a user could not already do from the developer tools.
  window.wschatDebug = Object.freeze({
    dropSocket(ms = 0) {
      state.holdUntil = Date.now() + ms;
      if (state.socket) state.socket.close(4000, 'dropped by wschatDebug');
    },
    stats() {
      return { ...stats, cursor: state.cursor, attempt: state.attempt, you: state.you };
    },
    /** The extensions the open socket negotiated (`permessage-deflate; ...`), or null. */
    extensions() {
      return state.socket ? state.socket.extensions : null;
    },
  });

  // ---------------------------------------------------------------------------------------------
  // Start: the room from the address, else the last one used, else the lobby.

  /** Takes the server's limits (see `limits`); on any failure the defaults stay. */
  async function loadLimits() {
    try {
      const response = await fetch('/limits', { cache: 'no-store' });
      if (!response.ok) return;
      const served = await response.json();
      for (const key of Object.keys(limits)) {
        if (Number.isInteger(served[key]) && served[key] > 0) limits[key] = served[key];
      }
      authRequired = served.auth === true;
    } catch {
      // An old server, or offline: the defaults are the server's defaults.
    }
    els.nameInput.maxLength = limits.max_name_len;
    els.roomInput.maxLength = limits.max_room_len;
    els.roomInput.pattern = `[A-Za-z0-9._\\-]{1,${limits.max_room_len}}`;
    els.roomInput.title = `Letters, digits, '-', '_' and '.', up to ${limits.max_room_len}`;
  }

  loadLimits().finally(() => {
    state.name = load(STORAGE_NAME, '');
    els.nameInput.value = state.name;
    if (authRequired) {
      // The token decides the nickname; the field shows it once the welcome names it.
      els.nameInput.disabled = true;
      els.nameInput.value = '';
      els.nameInput.placeholder = 'from your token';
      state.token = sessionStorage.getItem(STORAGE_TOKEN);
      takeTokenFromHash();
    }
    const initialRoom = roomFromHash() || recentRooms()[0] || 'lobby';
    if (roomFromHash() !== initialRoom) {
      history.replaceState(null, '', `#${encodeURIComponent(initialRoom)}`);
    }
    enterRoom(initialRoom);
    els.message.focus();
  });
})();
