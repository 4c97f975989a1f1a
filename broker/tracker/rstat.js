/*
 * band's tracker: a small stand-in for the Rockstat web SDK, served by the edge at
 * /lib.js when no SDK file is configured. It speaks the same snippet and payload:
 *
 *   rstat('configure', {server: 'track.example.com'});   // options, any number of calls
 *   rstat('page', {any: 'props'});                         // a page view
 *   rstat('event', 'signup', {plan: 'pro'});               // a named event
 *   rstat('identify', 'user-42', {email_domain: 'x.org'}); // an identify event; later events carry user id/traits
 *   rstat('alias', 'old-login', 'user-42');                // two ids of one person (docs/identity.md)
 *
 * Each event is one JSON object {service:'track', name, data, projectId, uid, user, page,
 * sess, browser, lib}, the field names of the Rockstat SDK (so the store's page_*, sess_*,
 * browser_*, user_* columns fill), sent with navigator.sendBeacon to /band/t4k.json;
 * XHR, then an image (/band/t4k.gif?<qs-encoded fields>) are the fallbacks.
 *
 * The edge prepends  ;window["rstat"]&&window["rstat"]('configure',{"initialUid":…})
 * and appends the call that starts this file: (window, document, "<global>", <the same options>),
 * the options used when the page has no snippet. Plain ES5, no build step.
 */
(function (win, doc, name, served) {
  'use strict';
  var VERSION = '1.0.0';
  var SESSION_TIMEOUT_MS = 30 * 60 * 1000;
  var UID_RE = /^[0-9]{10,22}$/;
  var MARKS = ['utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term', 'gclid', 'yclid', 'fbclid'];
  // referrer host (a trailing '.' matches any TLD) -> the engine the SDK names
  var ORGANIC = {'google.': 'google', 'yandex.': 'yandex', 'bing.com': 'bing', 'yahoo.com': 'yahoo',
                 'duckduckgo.com': 'duckduckgo', 'go.mail.ru': 'mailru', 'rambler.ru': 'rambler'};
  var SOCIAL = {'facebook.com': 'fb', 'instagram.com': 'instagram', 'vk.com': 'vk', 'linkedin.com': 'linkedin',
                'lnkd.in': 'linkedin', 'ok.ru': 'ok', 't.co': 'twitter'};

  var holder = win[name];
  if (holder && holder._loaded) { return; }  // the snippet may load /lib.js twice
  var options = {server: null, pathPrefix: '', urlMark: 'band', projectId: 0, initialUid: 0, sessionTimeout: 1800};
  var script = doc.currentScript;  // where /lib.js came from: the default server and scheme
  var scheme = script && /^http:/.test(script.src) ? 'http:' : 'https:';

  // --- storage: localStorage of the site, so a visitor keeps one uid across pages ---
  function load(key) {
    try { var raw = win.localStorage.getItem('band:' + key); return raw === null ? undefined : JSON.parse(raw); } catch (e) { return undefined; }
  }
  function save(key, value) {
    try { win.localStorage.setItem('band:' + key, JSON.stringify(value)); } catch (e) { /* private mode: not kept */ }
  }

  // --- what the payload says -------------------------------------------------------
  function hostOf(url) {
    var a = doc.createElement('a'); a.href = url; return a.hostname.replace(/^www\./, '');
  }
  function queryOf(url) {
    var out = {}, q = url.split('#')[0].split('?')[1];
    if (!q) { return out; }
    var parts = q.split('&');
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].split('=');
      try { out[decodeURIComponent(kv[0])] = decodeURIComponent((kv[1] || '').replace(/\+/g, ' ')); } catch (e) { /* skip */ }
    }
    return out;
  }
  function engineOf(host, rules) {  // the engine of the first rule the host matches
    for (var r in rules) {
      if (!Object.prototype.hasOwnProperty.call(rules, r)) { continue; }
      if (r.charAt(r.length - 1) === '.' ? (host.indexOf(r) === 0 || host.indexOf('.' + r) > 0) : (host === r || host.slice(-r.length - 1) === '.' + r)) { return rules[r]; }
    }
    return undefined;
  }
  // Where this visit came from: type (campaign, organic, social, referral, internal, direct) and marks.
  function source() {
    var query = queryOf(win.location.href), marks = {}, hasMarks = false;
    for (var i = 0; i < MARKS.length; i++) {
      var m = MARKS[i];
      if (query[m] !== undefined) { marks[m] = query[m]; hasMarks = true; }
    }
    if (marks.gclid) { marks.has_gclid = 1; }
    if (marks.yclid) { marks.has_yclid = 1; }
    if (marks.fbclid) { marks.has_fbclid = 1; }
    var ref = doc.referrer, refhost = ref ? hostOf(ref) : '', type = 'direct', engine;
    if (refhost && refhost === hostOf(win.location.href)) { type = 'internal'; }
    else if (refhost && (engine = engineOf(refhost, ORGANIC))) { type = 'organic'; }
    else if (refhost && (engine = engineOf(refhost, SOCIAL))) { type = 'social'; }
    else if (refhost) { type = 'referral'; }
    if (hasMarks && !(marks.fbclid && !marks.utm_source && !marks.gclid && !marks.yclid)) { type = 'campaign'; }
    return {type: type, engine: engine, marks: marks, hasMarks: hasMarks, refhost: refhost || undefined};
  }
  var sess = null;
  // A new session after sessionTimeout of silence, or when a page arrives with new campaign marks.
  function session(isPage) {
    var now = new Date().getTime(), last = load('last'), current = load('sess'), src = isPage ? source() : null, fresh = false;
    if (!current || !last || now - last > options.sessionTimeout * 1000) { fresh = true; }
    else if (src && src.hasMarks && JSON.stringify(src.marks) !== JSON.stringify(current.marks)) { fresh = true; }
    if (fresh) {
      src = src || source();
      current = {type: src.type, engine: src.engine, marks: src.marks, hasMarks: src.hasMarks, refhost: src.refhost,
                 num: (load('snum') || 0) + 1, start: now, pageNum: 0, eventNum: 0};
      save('snum', current.num);
    }
    if (isPage) { current.pageNum += 1; } else { current.eventNum += 1; }
    save('sess', current); save('last', now);
    sess = current;
    return fresh;
  }
  function page() {
    return {url: win.location.href, ref: doc.referrer, title: doc.title};
  }
  function browser() {
    var s = win.screen || {}, o = s.orientation || {}, html = doc.documentElement || {};
    return {w: win.innerWidth || html.clientWidth, h: win.innerHeight || html.clientHeight, tw: s.width, th: s.height,
            aw: s.availWidth, ah: s.availHeight, sopr: Math.round((win.devicePixelRatio || 1) * 1000), soa: o.angle || 0,
            sot: o.type || 'not present', if1: win === win.top ? 0 : 1, plt: navigator.platform, prd: navigator.product};
  }
  function user() {
    var d = new Date(), out = {}, traits = load('traits') || {}, tz;
    for (var k in traits) { if (Object.prototype.hasOwnProperty.call(traits, k)) { out[k] = traits[k]; } }
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { tz = undefined; }
    out.ts = d.getTime(); out.tz = tz || 'not present'; out.tzo = -d.getTimezoneOffset() * 1000;  // the SDK's units
    var id = load('userid');
    if (id !== undefined) { out.id = id; }
    return out;
  }
  function uid() {
    var stored = load('uid'), initial = String(options.initialUid || '');
    var value = UID_RE.test(String(stored || '')) ? String(stored) : (UID_RE.test(initial) ? initial : undefined);
    if (value) { save('uid', value); }
    return value;
  }

  // --- transport ---------------------------------------------------------------------
  function url(ext) {
    var server = options.server || (script && script.src ? script.src.split('/')[2] : win.location.host);
    return scheme + '//' + server + (options.pathPrefix || '') + '/' + options.urlMark + '/t4k.' + ext;
  }
  function qs(value, prefix, out) {  // {a: {b: 1}} -> a[b]=1, as the SDK's qs.stringify
    for (var k in value) {
      if (!Object.prototype.hasOwnProperty.call(value, k) || value[k] === undefined || value[k] === null) { continue; }
      var key = prefix ? prefix + '[' + k + ']' : k;
      if (typeof value[k] === 'object') { qs(value[k], key, out); } else { out.push(encodeURIComponent(key) + '=' + encodeURIComponent(value[k])); }
    }
    return out;
  }
  function send(msg) {
    var body = JSON.stringify(msg);
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url('json'), body)) { return; }
    } catch (e) { /* fall through */ }
    try {
      var xhr = new XMLHttpRequest();
      xhr.open('POST', url('json'), true);
      xhr.withCredentials = true;
      xhr.setRequestHeader('Content-Type', 'text/plain;charset=UTF-8');  // a simple request: no preflight
      xhr.send(body);
      return;
    } catch (e) { /* fall through */ }
    var small = {service: msg.service, name: msg.name, data: msg.data, projectId: msg.projectId, uid: msg.uid, user: msg.user,
                 sess: {num: msg.sess.num, pageNum: msg.sess.pageNum, eventNum: msg.sess.eventNum, type: msg.sess.type}};
    new Image(1, 1).src = url('gif') + '?' + qs(small, '', []).join('&');
  }
  function track(eventName, data) {
    var fresh = session(eventName === 'page');
    var base = {service: 'track', projectId: options.projectId, uid: uid(), user: user(), page: page(),
                browser: browser(), lib: {id: 'band-tracker', v: 1000000, sv: options.snippet}};
    if (fresh) { send(extend({name: 'session', data: {}, sess: sess}, base)); }
    send(extend({name: eventName, data: data || {}, sess: sess}, base));
  }
  function extend(a, b) {
    for (var k in b) { if (Object.prototype.hasOwnProperty.call(b, k)) { a[k] = b[k]; } }
    return a;
  }

  // --- the API ------------------------------------------------------------------------
  var api = {
    configure: function (opts) { extend(options, opts || {}); },
    page: function (data) { track('page', data); },
    event: function (eventName, data) { track(String(eventName), data); },
    identify: function (userId, traits) {
      if (userId && typeof userId === 'object') { traits = userId; userId = undefined; }
      if (userId !== undefined && userId !== null) { save('userid', String(userId)); }
      if (traits && typeof traits === 'object') { save('traits', traits); }
      // the store joins this uid and user.id into one person, and keeps the traits on it
      if (load('userid') !== undefined) { track('identify', {traits: traits && typeof traits === 'object' ? traits : {}}); }
    },
    alias: function (previousId, userId) {
      if (previousId === undefined || previousId === null || userId === undefined || userId === null) { return new Error('alias needs previousId and userId'); }
      save('userid', String(userId));
      track('alias', {previous_id: String(previousId), user_id: String(userId)});
    },
    getUid: function () { return uid(); }
  };
  function call(args) {
    args = Array.prototype.slice.call(args);
    var method = api[args.shift()];
    return method ? method.apply(api, args) : new Error('Undefined method');
  }

  if (holder) { options.snippet = holder._sv; } else { holder = win[name] = function () { return call(arguments); }; extend(options, served || {}); }
  holder._loaded = true;
  // the edge's configure comes after the page's first events in the snippet's queue:
  // every configure call is applied now, the events once the document is parsed
  var waiting = [], queued = holder._q || [];
  for (var i = 0; i < queued.length; i++) { if (queued[i][0] === 'configure') { call(queued[i]); } else { waiting.push(queued[i]); } }
  holder._q = waiting;
  function start() {
    var pending = holder._q;
    holder._q = [];
    holder.doCall = function (args) { return call(args); };
    for (var j = 0; j < pending.length; j++) { call(pending[j]); }
  }
  if (doc.readyState === 'loading') { doc.addEventListener('DOMContentLoaded', start); } else { start(); }
})
