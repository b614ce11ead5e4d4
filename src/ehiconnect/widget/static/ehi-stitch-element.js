/*
 * <ehi-stitch-element>: ehiconnect's embeddable consent widget ("Stitch"). The same element is
 * also defined as <fasten-stitch-element> and this script is also served at
 * /connect/v4/fasten-stitch-element.js, so a page written for Fasten Connect's Stitch works by
 * changing only the script's host (docs/migrating-from-fasten.md).
 *
 * A patient opens it from a button, finds their health system in the catalog, and signs in at
 * that health system's patient portal in a popup. The platform's OAuth callback page posts the
 * result back here; the element reports progress to the host page as `eventBus` CustomEvents.
 * Plain JavaScript, no dependencies, no build step. See docs/widget.md for the contract.
 *
 * Security notes:
 * - Nothing from the network is parsed as HTML: every string goes through textContent or
 *   setAttribute, and URLs used as href/src must be http(s).
 * - Results from the popup are accepted only from the popup this element opened and only from
 *   the API origin.
 * - When the popup cannot post its result (a portal's Cross-Origin-Opener-Policy cut it off from
 *   this page), the element reads it from the platform with a result handle: 32 random bytes it
 *   made itself and kept in memory. The popup's URL carries only the handle's SHA-256
 *   (`result_challenge`), so nothing outside this page can read the result with it.
 * - Each sign-in attempt settles once, by whichever path answers first; the other is ignored.
 * - API calls are CORS requests without credentials; the platform decides which origins may embed.
 */
(() => {
  'use strict';

  const TAGS = ['ehi-stitch-element', 'fasten-stitch-element'];
  // Where the platform serves this script; the API base is what comes before it.
  const SCRIPT_PATHS = [
    '/widget/ehi-stitch-element.js',
    '/connect/v4/fasten-stitch-element.js',
    '/connect/v3/fasten-stitch-element.js',
  ];

  const EVENT = Object.freeze({
    CONNECTION_PENDING: 'patient.connection_pending',
    CONNECTION_SUCCESS: 'patient.connection_success',
    CONNECTION_FAILED: 'patient.connection_failed',
    COMPLETE: 'widget.complete',
    CLOSE: 'widget.close',
    CONFIG_ERROR: 'widget.config_error',
    SEARCH_QUERY: 'search.query',
  });

  // The fields of a connected account, as widget.complete and patient.connection_success carry it
  // (Fasten's names; scope and consent_expires_at are null when the callback did not report them).
  const ACCOUNT_FIELDS = [
    'org_connection_id', 'connection_status', 'platform_type', 'brand_id', 'portal_id', 'endpoint_id',
    'scope', 'consent_expires_at',
  ];

  const PAGE_SIZE = 20;
  const SEARCH_DEBOUNCE_MS = 300;
  const REQUEST_TIMEOUT_MS = 20000;
  const POPUP_POLL_MS = 500;
  // A popup posts its result and closes at once; the message can be delivered after we notice
  // the window is closed, so wait a moment before calling the attempt abandoned.
  const POPUP_CLOSE_GRACE_MS = 1000;
  // The fallback: poll the platform for the result of the attempt's flow. A popup that lost its
  // opener closes itself after storing the result, and one that went through a portal sending
  // Cross-Origin-Opener-Policy looks closed from here while the patient is still signing in, so
  // polling goes on (more slowly) after "closed" until the flow finishes or expires.
  const RESULT_PATH = 'v1/bridge/connect/result';
  const RESULT_POLL_MS = 2000;
  const RESULT_POLL_SLOW_MS = 5000;
  const RESULT_POLL_FAST_FOR_MS = 120000;
  const RESULT_CLOSE_POLL_MS = 1000;
  const RESULT_CLOSE_GRACE_MS = 4000;
  const RESULT_POLL_LIMIT_MS = 30 * 60 * 1000;
  const POPUP_WIDTH = 520;
  const POPUP_HEIGHT = 720;

  const POPUP_BLOCKED_TEXT =
    'Your browser blocked the sign-in window. Allow pop-ups for this site and try again.';

  const FOCUSABLE = [
    'a[href]', 'button:not([disabled])', 'input:not([disabled])', 'select:not([disabled])',
    'textarea:not([disabled])', 'summary', '[tabindex]:not([tabindex="-1"])',
  ].join(',');

  // Resolved while this script runs: document.currentScript exists only for classic scripts, so
  // a module-loaded copy finds its own <script> tag instead.
  const SCRIPT_URL = (() => {
    const current = document.currentScript;
    if (current && current.src) return current.src;
    for (const script of document.querySelectorAll('script[src]')) {
      const path = new URL(script.src, document.baseURI).pathname;
      if (SCRIPT_PATHS.some((known) => path.endsWith(known))) return script.src;
    }
    return null;
  })();

  /** The platform's base URL (always ending in "/"): the api-base attribute, else where this
   *  script was served from (what precedes /widget/… or /connect/v4/…, so path-prefixed
   *  deployments work). */
  function resolveApiBase(attribute) {
    try {
      if (attribute) {
        const url = new URL(attribute, document.baseURI);
        if (!url.pathname.endsWith('/')) url.pathname += '/';
        return url;
      }
      if (SCRIPT_URL) {
        const url = new URL(SCRIPT_URL);
        const known = SCRIPT_PATHS.find((path) => url.pathname.endsWith(path));
        url.pathname = known ? `${url.pathname.slice(0, -known.length)}/` : new URL('../', url).pathname;
        url.search = '';
        url.hash = '';
        return url;
      }
    } catch (error) {
      // fall through to the page's own origin
    }
    return new URL('/', document.baseURI);
  }

  /** href/src values from the network: only http(s) URLs, never javascript: or data:. */
  function safeHttpUrl(value) {
    if (typeof value !== 'string' || value === '') return null;
    try {
      const url = new URL(value);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url.href : null;
    } catch (error) {
      return null;
    }
  }

  function text(value) {
    return typeof value === 'string' ? value : value == null ? '' : String(value);
  }

  function list(value) {
    return Array.isArray(value) ? value : [];
  }

  /** Boolean attributes follow the compat convention: present means on unless "false". */
  function flag(value) {
    return value !== null && value !== 'false' && value !== '0';
  }

  /**
   * Builds an element. `props`: class, text (textContent), on<Event> (addEventListener), and any
   * other key as an attribute (true → empty attribute, null/undefined/false → omitted).
   * Children are nodes or strings; strings become text nodes.
   */
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = value;
      else if (/^on[A-Z]/.test(key)) node.addEventListener(key.slice(2).toLowerCase(), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child !== null && child !== undefined && child !== false) node.append(child);
    }
    return node;
  }

  /** A dialog button; `kind` is its visual weight, primary or secondary. */
  function button(label, onClick, kind = 'secondary') {
    return h('button', { type: 'button', class: kind, text: label, onClick });
  }

  function base64url(bytes) {
    let binary = '';
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  /** A new result handle (32 random bytes, base64url) and its challenge, BASE64URL(SHA-256) of
   *  the handle's text as PKCE's S256 computes it. Null without Web Crypto (pages served over
   *  plain http other than localhost): the widget then relies on the popup's message alone. */
  async function newResultHandle() {
    const webCrypto = globalThis.crypto;
    if (!webCrypto || !webCrypto.subtle || !webCrypto.getRandomValues) return null;
    const handle = base64url(webCrypto.getRandomValues(new Uint8Array(32)));
    const digest = await webCrypto.subtle.digest('SHA-256', new TextEncoder().encode(handle));
    return { handle, challenge: base64url(new Uint8Array(digest)) };
  }

  function modeFromPublicId(publicId) {
    const match = /^public_(test|live)_/.exec(publicId || '');
    return match ? match[1] : null;
  }

  function brandLocation(brand) {
    const locations = list(brand.locations).filter((item) => item && (item.city || item.state));
    if (locations.length === 0) return '';
    const first = [text(locations[0].city), text(locations[0].state)].filter(Boolean).join(', ');
    const more = locations.length - 1;
    return more > 0 ? `${first} and ${more} more location${more === 1 ? '' : 's'}` : first;
  }

  /** Every (portal, endpoint) pair of a brand that can be connected now, optionally narrowed to
   *  the portal-id / endpoint-id the host asked for. */
  function usableEndpoints(brand, portalId, endpointId) {
    const options = [];
    for (const portal of list(brand.portals)) {
      if (!portal || (portalId && portal.id !== portalId)) continue;
      for (const endpoint of list(portal.endpoints)) {
        if (!endpoint || (endpointId && endpoint.id !== endpointId)) continue;
        if (endpoint.status && endpoint.status !== 'active') continue;
        options.push({ portal, endpoint });
      }
    }
    return options;
  }

  /** An API error with the envelope's code and description (or ours, for network failures). */
  class ApiProblem extends Error {
    constructor(code, description, status) {
      super(description);
      this.code = code;
      this.description = description;
      this.status = status;
    }
  }

  /** One entry of widget.complete: the connection_success fields plus Fasten's brand, portal and
   *  endpoint objects (only what the widget knows of them). */
  function completedAccount({ event, target }) {
    const brand = target.brand || {};
    const portal = target.portal || {};
    const endpoint = target.endpoint || {};
    return {
      ...event,
      brand: event.brand_id
        ? { id: event.brand_id, name: brand.name ?? null, logo_uri: brand.logo ?? null }
        : null,
      portal: event.portal_id ? { id: event.portal_id, name: portal.name ?? null } : null,
      endpoint: event.endpoint_id
        ? { id: event.endpoint_id, platform_type: endpoint.platform_type ?? event.platform_type }
        : null,
    };
  }

  let instanceCount = 0;

  class EhiStitchElement extends HTMLElement {
    static get observedAttributes() {
      return ['public-id', 'api-base'];
    }

    #ui = null; // the shadow DOM parts, built once
    #org = null; // the organization card, once loaded
    #orgRequest = null; // the in-flight organization card request
    #accounts = []; // accounts connected since the dialog was opened
    #popup = null;
    #popupTimer = 0;
    // The sign-in in progress: { target: { brand, portal, endpoint, reconnect }, handle, settled,
    // polling, inFlight, startedAt, closedAt, deadline, timer, graceTimer, notFinishedShown }.
    #attempt = null;
    #nextHandle = null; // made ahead: the popup must open synchronously inside the click
    #handleRequest = null;
    #search = {
      query: '', city: '', state: '', results: [], received: 0, searchAfter: null, total: null,
    };
    #searchSeq = 0;
    #searchTimer = 0;
    #searchBusy = false; // a search is scheduled or in flight
    #searchStale = false; // one was abandoned when the patient moved on
    #popupName = `ehiconnect_signin_${++instanceCount}`;

    constructor() {
      super();
      this.attachShadow({ mode: 'open' });
    }

    connectedCallback() {
      if (!this.#ui) this.#build();
      this.#prepareHandle();
      this.#ui.stylesheet.href = new URL('widget/ehi-stitch-element.css', this.#apiBase).href;
      window.addEventListener('message', this.#onMessage);
      // Let the host page attach its eventBus listener first (this can run while it is parsed).
      if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', () => this.#checkConfig(), { once: true });
      } else {
        setTimeout(() => this.#checkConfig(), 0);
      }
    }

    disconnectedCallback() {
      window.removeEventListener('message', this.#onMessage);
      this.#closePopup();
      this.#stopSearching();
    }

    attributeChangedCallback(name, oldValue, newValue) {
      if (oldValue === newValue) return;
      this.#org = null;
      this.#orgRequest = null;
      if (this.#ui && name === 'api-base') {
        this.#ui.stylesheet.href = new URL('widget/ehi-stitch-element.css', this.#apiBase).href;
      }
    }

    /** Opens the dialog, as the button does. */
    open() {
      this.#openDialog();
    }

    /** Closes the dialog, emitting widget.complete (if anything was connected) and widget.close. */
    close() {
      if (this.#ui && this.#ui.dialog.open) this.#ui.dialog.close();
    }

    /** Fasten's names for open() and close(). */
    show() {
      this.open();
    }

    hide() {
      this.close();
    }

    // ---- configuration -------------------------------------------------------------------------

    get #publicId() {
      return (this.getAttribute('public-id') || '').trim();
    }

    get #apiBase() {
      return resolveApiBase(this.getAttribute('api-base'));
    }

    get #apiOrigin() {
      return this.#apiBase.origin;
    }

    get #apiMode() {
      return (this.#org && this.#org.api_mode) || modeFromPublicId(this.#publicId) || 'test';
    }

    get #staticBackdrop() {
      return flag(this.getAttribute('static-backdrop'));
    }

    #attr(name) {
      const value = this.getAttribute(name);
      return value && value.trim() ? value.trim() : null;
    }

    /** The configuration problem that stops the widget before any request, if any. */
    #configProblem() {
      const publicId = this.#publicId;
      if (!publicId) {
        return new ApiProblem(
          'missing_public_id',
          'Set the public-id attribute to your organization\'s public_test_… or public_live_… id.',
        );
      }
      if (!modeFromPublicId(publicId)) {
        return new ApiProblem(
          'invalid_public_id',
          'The public-id attribute must be a public_test_… or public_live_… id.',
        );
      }
      return null;
    }

    async #checkConfig() {
      const problem = this.#configProblem();
      if (problem) {
        this.#emitConfigError(problem);
        return;
      }
      if (flag(this.getAttribute('tefca-mode'))) {
        // Fasten's TEFCA IAS mode needs a TEFCA network membership; this platform has none. Say so
        // and carry on with the catalog search, which reaches the same health systems' portals.
        this.#emitConfigError(new ApiProblem(
          'tefca_mode_unsupported',
          'tefca-mode is not supported by ehiconnect; the patient searches the catalog instead.',
        ));
      }
      try {
        await this.#loadOrg();
      } catch (error) {
        this.#emitConfigError(error);
      }
    }

    #emitConfigError(problem) {
      this.#emit(EVENT.CONFIG_ERROR, { error: problem.code, error_description: problem.description });
    }

    // ---- events --------------------------------------------------------------------------------

    /** Dispatches the compat eventBus event, unless event-types filters this type out. */
    #emit(eventType, data) {
      const filter = (this.getAttribute('event-types') || '')
        .split(',').map((item) => item.trim()).filter(Boolean);
      if (filter.length > 0 && !filter.includes(eventType)) return;
      const detail = { data: JSON.stringify({ api_mode: this.#apiMode, event_type: eventType, data }) };
      this.dispatchEvent(new CustomEvent('eventBus', { detail, bubbles: true, composed: true }));
    }

    // ---- API -----------------------------------------------------------------------------------

    async #api(method, path, params, body) {
      const url = new URL(path, this.#apiBase);
      for (const [key, value] of Object.entries(params)) {
        if (value !== null && value !== undefined && value !== '') url.searchParams.set(key, value);
      }
      const headers = { Accept: 'application/json' };
      const init = { method, mode: 'cors', credentials: 'omit', headers };
      if (body !== undefined) {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      if (typeof AbortSignal !== 'undefined' && AbortSignal.timeout) {
        init.signal = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
      }
      let response;
      try {
        response = await fetch(url.href, init);
      } catch (error) {
        throw new ApiProblem(
          'network_error',
          `Could not reach ${this.#apiOrigin}. Check your connection; if you run this site, ` +
            'check that its origin is registered with ehiconnect.',
        );
      }
      let envelope = null;
      try {
        envelope = await response.json();
      } catch (error) {
        // not JSON: reported below with the status
      }
      if (!response.ok || !envelope || envelope.success !== true) {
        throw new ApiProblem(
          text(envelope && envelope.error) || `http_${response.status}`,
          text(envelope && envelope.error_description) ||
            `The server answered ${response.status} ${response.statusText}.`,
          response.status,
        );
      }
      return envelope.data;
    }

    #loadOrg() {
      if (this.#org) return Promise.resolve(this.#org);
      if (!this.#orgRequest) {
        const request = this.#api('GET', 'v1/bridge/org', { public_id: this.#publicId })
          .then((data) => {
            if (!data || typeof data !== 'object') {
              throw new ApiProblem('invalid_response', 'The organization card is missing.');
            }
            if (this.#orgRequest === request) this.#org = data;
            return data;
          })
          .finally(() => {
            if (this.#orgRequest === request) this.#orgRequest = null;
          });
        this.#orgRequest = request;
      }
      return this.#orgRequest;
    }

    // ---- shadow DOM ----------------------------------------------------------------------------

    #build() {
      const stylesheet = h('link', { rel: 'stylesheet' });
      const trigger = h(
        'button',
        { type: 'button', class: 'trigger', part: 'button', onClick: () => this.#openDialog() },
        h('slot', {}, 'Connect your health records'),
      );
      const orgLogo = h('img', { class: 'org-logo', alt: '', hidden: true });
      const orgName = h('span', { class: 'org-name' });
      const modeBadge = h('span', { class: 'badge', hidden: true, text: 'Test mode' });
      const closeButton = h('button', {
        type: 'button', class: 'icon-button close', 'aria-label': 'Close', text: '×',
        onClick: () => this.close(),
      });
      const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
      const view = h('div', { class: 'view' });
      const privacyLink = h('a', {
        class: 'privacy', target: '_blank', rel: 'noopener noreferrer', hidden: true,
      });
      const dialog = h(
        'dialog',
        { class: 'dialog', 'aria-labelledby': 'view-title', part: 'dialog' },
        h(
          'div',
          { class: 'frame' },
          h('header', { class: 'header' }, orgLogo, orgName, modeBadge, closeButton),
          view,
          status,
          h(
            'footer',
            { class: 'footer' },
            privacyLink,
            h('span', { class: 'powered', text: 'Secured by ehiconnect' }),
          ),
        ),
      );
      dialog.addEventListener('keydown', (event) => this.#onDialogKeydown(event));
      // Other close requests (e.g. a phone's back gesture) arrive as `cancel`.
      dialog.addEventListener('cancel', (event) => {
        event.preventDefault();
        if (!this.#staticBackdrop) this.close();
      });
      dialog.addEventListener('close', () => this.#onDialogClosed());
      // A click whose target is the <dialog> itself landed on the backdrop: .frame fills the box.
      dialog.addEventListener('click', (event) => {
        if (event.target === dialog && !this.#staticBackdrop) this.close();
      });
      this.shadowRoot.append(stylesheet, trigger, dialog);
      this.#ui = {
        stylesheet, trigger, dialog, orgLogo, orgName, modeBadge, status, view, privacyLink,
      };
    }

    #onDialogKeydown(event) {
      if (event.key === 'Escape') {
        // Handled here rather than via `cancel`, which Chrome may skip preventing on repeats.
        event.preventDefault();
        if (!this.#staticBackdrop) this.close();
      } else if (event.key === 'Tab') {
        this.#keepFocusInside(event);
      }
    }

    /** Tab and Shift+Tab cycle through the dialog's controls instead of leaving it. */
    #keepFocusInside(event) {
      const focusable = [...this.#ui.dialog.querySelectorAll(FOCUSABLE)]
        .filter((node) => node.getClientRects().length > 0);
      if (focusable.length === 0) return;
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      const active = this.shadowRoot.activeElement;
      const inside = active && this.#ui.dialog.contains(active);
      if (event.shiftKey && (!inside || active === first)) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && (!inside || active === last)) {
        event.preventDefault();
        first.focus();
      }
    }

    #announce(message) {
      this.#ui.status.textContent = message || '';
    }

    /** Replaces the dialog's content with a view: a heading plus `children`; focuses `focus`
     *  (or the heading, so screen readers read where the patient is). */
    #showView(title, children, { focus = null, announce = '' } = {}) {
      const heading = h('h2', { id: 'view-title', class: 'title', tabindex: '-1', text: title });
      this.#ui.view.replaceChildren(heading, ...children);
      this.#announce(announce);
      (focus || heading).focus();
    }

    #renderOrgHeader() {
      const org = this.#org || {};
      const { orgLogo, orgName, modeBadge, privacyLink } = this.#ui;
      const logo = safeHttpUrl(org.logo);
      orgLogo.hidden = !logo;
      if (logo) orgLogo.src = logo;
      else orgLogo.removeAttribute('src');
      orgName.textContent = text(org.name);
      modeBadge.hidden = this.#apiMode !== 'test';
      const policy = safeHttpUrl(org.privacy_policy_url);
      privacyLink.hidden = !policy;
      if (policy) {
        privacyLink.href = policy;
        privacyLink.textContent = org.name ? `${text(org.name)} privacy policy` : 'Privacy policy';
      } else {
        privacyLink.removeAttribute('href');
      }
    }

    // ---- dialog flow ---------------------------------------------------------------------------

    async #openDialog() {
      const { dialog } = this.#ui;
      if (dialog.open) return;
      this.#accounts = [];
      this.#renderOrgHeader();
      dialog.showModal();
      this.#prepareHandle();

      const problem = this.#configProblem();
      if (problem) {
        this.#showConfigError(problem);
        return;
      }
      if (!this.#org) {
        this.#showView('Loading…', [], { announce: 'Loading…' });
        try {
          await this.#loadOrg();
        } catch (error) {
          if (dialog.open) this.#showConfigError(error);
          return;
        }
        if (!dialog.open) return;
        this.#renderOrgHeader();
      }

      if (this.#attr('reconnect-org-connection-id')) this.#showReconnect();
      else if (flag(this.getAttribute('show-splash'))) this.#showSplash();
      else this.#startCatalog();
    }

    #onDialogClosed() {
      // Leaving mid-sign-in abandons the attempt; the popup would have nothing to report to.
      this.#closePopup();
      this.#stopSearching();
      if (this.#accounts.length > 0) {
        this.#emit(EVENT.COMPLETE, this.#accounts.map((account) => completedAccount(account)));
      }
      this.#accounts = [];
      this.#emit(EVENT.CLOSE, {});
      this.#ui.trigger.focus();
    }

    #showConfigError(problem) {
      this.#emitConfigError(problem);
      const close = button('Close', () => this.close());
      this.#showView(
        'This connection can’t start',
        [
          h('p', {
            text: 'The app you came from has not set up this feature correctly. Please let them know.',
          }),
          h('p', { class: 'detail', text: problem.description }),
          h('div', { class: 'actions' }, close),
        ],
        { announce: 'This connection can’t start.' },
      );
    }

    #showSplash() {
      const orgName = text(this.#org && this.#org.name) || 'This app';
      const next = button('Continue', () => this.#startCatalog(), 'primary');
      this.#showView(
        'Connect your health records',
        [
          h('p', { text: `${orgName} asks for a copy of your health records.` }),
          h(
            'ul',
            { class: 'points' },
            h('li', { text: 'Find your hospital, clinic or health system.' }),
            h('li', { text: 'Sign in at its patient portal, in a new window.' }),
            h('li', { text: 'Your records are shared only after you agree there.' }),
          ),
          h('div', { class: 'actions' }, next),
        ],
        { focus: next },
      );
    }

    #showReconnect() {
      const orgName = text(this.#org && this.#org.name) || 'this app';
      const target = {
        brand: null, portal: null, endpoint: null,
        reconnect: this.#attr('reconnect-org-connection-id'),
      };
      const connect = button('Sign in again', () => this.#connect(target), 'primary');
      this.#showView(
        'Reconnect your health records',
        [
          h('p', {
            text: `Sign in at your health system again so ${orgName} can keep receiving your records.`,
          }),
          h('div', { class: 'actions' }, connect),
        ],
        { focus: connect },
      );
    }

    /** The search, or straight to a brand's sign-in options when the host preselected one. */
    async #startCatalog() {
      const brandId = this.#attr('brand-id');
      const portalId = this.#attr('portal-id');
      // Each opening starts a fresh search, seeded from search-query.
      this.#search = {
        query: this.#attr('search-query') || '', city: '', state: '',
        results: [], received: 0, searchAfter: null, total: null,
      };
      if (!brandId && !portalId) {
        this.#showSearch();
        this.#runSearch();
        return;
      }
      this.#showView('Loading…', [], { announce: 'Loading…' });
      try {
        const data = await this.#api('GET', 'v1/bridge/catalog', {
          public_id: this.#publicId, api_mode: this.#apiMode,
          brand_id: brandId, portal_id: brandId ? null : portalId,
        });
        if (!this.#ui.dialog.open) return;
        // A portal lookup may answer with the portal itself; present it as a one-portal brand.
        const brand = data && Array.isArray(data.portals)
          ? data
          : { id: (data && data.brand_id) || null, name: text(data && data.name), portals: [data] };
        this.#showEndpoints(brand);
      } catch (error) {
        if (!this.#ui.dialog.open) return;
        this.#showSearch();
        this.#runSearch();
        this.#announce('That health system could not be loaded; search for it instead.');
      }
    }

    // ---- search --------------------------------------------------------------------------------

    #showSearch() {
      const state = this.#search;
      const input = h('input', {
        type: 'search', id: 'query', name: 'query', autocomplete: 'off', value: state.query,
        maxlength: 200,
        placeholder: 'Hospital, clinic or health system', enterkeyhint: 'search',
      });
      const city = h('input', {
        type: 'text', id: 'city', name: 'city', autocomplete: 'address-level2', value: state.city,
        maxlength: 100,
      });
      const region = h('input', {
        type: 'text', id: 'state', name: 'state', autocomplete: 'address-level1', value: state.state,
        maxlength: 50,
      });
      const scheduleSearch = () => {
        clearTimeout(this.#searchTimer);
        this.#searchBusy = true;
        this.#searchTimer = setTimeout(() => this.#runSearch(), SEARCH_DEBOUNCE_MS);
      };
      const readInputs = () => {
        state.query = input.value.trim();
        state.city = city.value.trim();
        state.state = region.value.trim();
      };
      for (const field of [input, city, region]) {
        field.addEventListener('input', () => { readInputs(); scheduleSearch(); });
      }
      const form = h(
        'form',
        {
          role: 'search', class: 'search', onSubmit: (event) => {
            event.preventDefault();
            clearTimeout(this.#searchTimer);
            readInputs();
            this.#runSearch();
          },
        },
        h('label', { for: 'query', text: 'Search for your health system' }),
        h(
          'div',
          { class: 'search-row' },
          input,
          h('button', { type: 'submit', class: 'primary', text: 'Search' }),
        ),
        h(
          'details',
          { class: 'location', open: Boolean(state.city || state.state) },
          h('summary', { text: 'Narrow by location' }),
          h(
            'div',
            { class: 'location-row' },
            h('span', { class: 'field' }, h('label', { for: 'city', text: 'City' }), city),
            h('span', { class: 'field' }, h('label', { for: 'state', text: 'State' }), region),
          ),
        ),
      );
      const results = h('ul', { class: 'results', 'aria-label': 'Health systems' });
      const more = h('button', {
        type: 'button', class: 'secondary more', hidden: true, text: 'Show more results',
        onClick: () => this.#runSearch({ append: true }),
      });
      const missing = h('p', { class: 'missing' }, button(
        'Can’t find your health system?', () => this.#showSupportForm(), 'link',
      ));
      this.#showView('Find your health system', [form, results, more, missing], { focus: input });
      this.#ui.results = results;
      this.#ui.more = more;
      this.#renderResults();
    }

    // ---- "I can't find my health system": a support request to the organization --------------

    #showSupportForm() {
      this.#stopSearching();
      const field = (id, label, control) => h('span', { class: 'form-field' },
        h('label', { for: id, text: label }), control);
      const email = h('input', {
        type: 'email', id: 'support-email', name: 'email', required: true, maxlength: 254,
        autocomplete: 'email', value: this.#attr('email') || '',
      });
      const name = h('input', {
        type: 'text', id: 'support-name', name: 'name', required: true, maxlength: 200,
        autocomplete: 'name',
      });
      const subject = h('input', {
        type: 'text', id: 'support-subject', name: 'subject', required: true, maxlength: 200,
        value: this.#search.query ? `Please add ${this.#search.query}` : 'Please add my health system',
      });
      const body = h('textarea', {
        id: 'support-body', name: 'body', required: true, maxlength: 5000, rows: 4,
        placeholder: 'The health system’s name, city and website, or its patient portal',
      });
      const send = h('button', { type: 'submit', class: 'primary', text: 'Send request' });
      const form = h('form', {
        class: 'support', onSubmit: (event) => {
          event.preventDefault();
          this.#sendSupportRequest({
            email: email.value.trim(), name: name.value.trim(), subject: subject.value.trim(),
            body: body.value.trim(),
          }, send);
        },
      },
      h('p', { text: 'Tell us which health system you use and we will look into adding it.' }),
      field('support-email', 'Your email', email),
      field('support-name', 'Your name', name),
      field('support-subject', 'Subject', subject),
      field('support-body', 'Which health system?', body),
      h('div', { class: 'actions' }, send, this.#backButton()));
      this.#showView('Request a health system', [form], { focus: email.value ? name : email });
    }

    async #sendSupportRequest(fields, send) {
      send.disabled = true;
      this.#announce('Sending…');
      try {
        await this.#api('POST', 'v1/support/request', { public_id: this.#publicId }, {
          ...fields, external_id: this.#attr('external-id'),
        });
      } catch (error) {
        send.disabled = false;
        this.#announce(`Your request was not sent: ${error.description}`);
        return;
      }
      const back = button('Back to search', () => this.#returnToSearch(), 'primary');
      this.#showView('Request sent', [
        h('p', { text: 'Thank you. We will let you know at the email address you gave.' }),
        h('div', { class: 'actions' }, back),
      ], { focus: back, announce: 'Your request was sent.' });
    }

    async #runSearch({ append = false } = {}) {
      const state = this.#search;
      const seq = ++this.#searchSeq;
      this.#searchBusy = true;
      this.#searchStale = false;
      const body = {
        query: state.query, searchAfter: append ? state.searchAfter : null, limit: PAGE_SIZE,
      };
      if (state.city) body.city = state.city;
      if (state.state) body.state = state.state;
      if (!append && (state.query || state.city || state.state)) {
        const data = { query: state.query };
        if (state.city) data.city = state.city;
        if (state.state) data.state = state.state;
        this.#emit(EVENT.SEARCH_QUERY, data);
      }
      this.#announce('Searching…');
      let data;
      try {
        data = await this.#api(
          'POST', 'v1/bridge/catalog/search',
          { public_id: this.#publicId, api_mode: this.#apiMode }, body,
        );
      } catch (error) {
        if (seq === this.#searchSeq) {
          this.#searchBusy = false;
          this.#announce(`Search is not available right now: ${error.description} Try again soon.`);
        }
        return;
      }
      if (seq !== this.#searchSeq) return; // a newer search has started, or the patient moved on
      this.#searchBusy = false;
      // Elasticsearch's shape (compat): data.hits.hits[]._source is a brand; the next page
      // starts after the last hit's `sort`.
      const hitsBlock = (data && data.hits) || {};
      const hits = list(hitsBlock.hits).filter((hit) => hit && typeof hit === 'object');
      const found = hits.map((hit) => hit._source)
        .filter((brand) => brand && typeof brand === 'object' && brand.hidden !== true);
      const firstNew = append ? state.results.length : 0;
      state.results = append ? state.results.concat(found) : found;
      state.received = (append ? state.received : 0) + hits.length;
      const total = hitsBlock.total && Number.isFinite(hitsBlock.total.value)
        ? hitsBlock.total.value : null;
      const last = hits.length > 0 ? hits[hits.length - 1].sort : null;
      state.searchAfter = Array.isArray(last) && total !== null && state.received < total
        ? last : null;
      state.total = total;
      this.#renderResults();
      const count = state.total ?? state.results.length;
      if (state.results.length === 0) {
        this.#announce(
          state.query ? `No health systems match “${state.query}”.` : 'No health systems found.',
        );
      } else {
        this.#announce(`${count} health system${count === 1 ? '' : 's'} found.`);
      }
      if (append && this.#ui.results) {
        const first = this.#ui.results.querySelectorAll('button.brand')[firstNew];
        if (first) first.focus();
      }
    }

    #renderResults() {
      const { results, more } = this.#ui;
      if (!results || !results.isConnected) return;
      const cards = this.#search.results.map((brand) => h('li', {}, this.#brandCard(brand)));
      results.replaceChildren(...cards);
      more.hidden = this.#search.searchAfter === null;
    }

    #brandCard(brand) {
      const name = text(brand.name) || 'Unnamed health system';
      const logo = safeHttpUrl(brand.logo);
      const initial = () => h('span', {
        class: 'brand-logo placeholder', 'aria-hidden': 'true', text: name.charAt(0).toUpperCase(),
      });
      const mark = logo
        ? h('img', {
          class: 'brand-logo', src: logo, alt: '', loading: 'lazy', referrerpolicy: 'no-referrer',
        })
        : initial();
      if (logo) mark.addEventListener('error', () => mark.replaceWith(initial()));
      const where = brandLocation(brand);
      return h(
        'button',
        { type: 'button', class: 'brand', onClick: () => this.#chooseBrand(brand) },
        mark,
        h('span', { class: 'brand-text' },
          h('span', { class: 'brand-name', text: name }),
          where ? h('span', { class: 'brand-location', text: where }) : null),
      );
    }

    /** Runs inside the click: with one usable endpoint the popup must open right here, or popup
     *  blockers stop it. */
    #chooseBrand(brand) {
      this.#stopSearching();
      const options = usableEndpoints(brand, this.#attr('portal-id'), this.#attr('endpoint-id'));
      if (options.length === 1) this.#connect({ brand, ...options[0] });
      else this.#showEndpoints(brand);
    }

    #showEndpoints(brand) {
      const name = text(brand.name) || 'this health system';
      const options = usableEndpoints(brand, this.#attr('portal-id'), this.#attr('endpoint-id'));
      const back = button('Search for another health system', () => this.#returnToSearch());
      if (options.length === 0) {
        this.#showView(name, [
          h('p', {
            text: `${name} can’t be connected right now. ` +
              'Try again later, or choose another health system.',
          }),
          h('div', { class: 'actions' }, back),
        ], { announce: `${name} can’t be connected right now.` });
        return;
      }
      const buttons = options.map((option) => {
        const endpointName = text(option.endpoint.name);
        let host = '';
        try { host = new URL(option.endpoint.url).host; } catch (error) { /* no URL to show */ }
        const detail = [endpointName, host].filter(Boolean).join(' · ');
        return h('li', {}, h(
          'button',
          { type: 'button', class: 'option', onClick: () => this.#connect({ brand, ...option }) },
          h('span', { class: 'option-name', text: text(option.portal.name) || name }),
          detail ? h('span', { class: 'option-detail', text: detail }) : null,
        ));
      });
      const intro = options.length === 1
        ? `You’ll sign in at ${name}’s patient portal in a new window.`
        : `${name} has more than one patient portal. Choose the one you use.`;
      this.#showView(`Sign in to ${name}`, [
        h('p', { text: intro }),
        h('ul', { class: 'options', 'aria-label': 'Patient portals' }, buttons),
        h('div', { class: 'actions' }, back),
      ], { focus: buttons[0].querySelector('button') });
    }

    // ---- the sign-in popup ---------------------------------------------------------------------

    #prepareHandle() {
      if (this.#nextHandle || this.#handleRequest) return;
      const request = newResultHandle()
        .catch(() => null)
        .then((made) => {
          if (this.#handleRequest !== request) return;
          this.#handleRequest = null;
          this.#nextHandle = made;
        });
      this.#handleRequest = request;
    }

    /** The handle made ahead (null if it is not ready), and a new one on its way: one per attempt. */
    #takeHandle() {
      const made = this.#nextHandle;
      this.#nextHandle = null;
      this.#prepareHandle();
      return made;
    }

    /** Opens the sign-in popup. Must run synchronously inside a click handler. */
    #connect(target) {
      this.#closePopup();
      const made = this.#takeHandle();
      const params = target.reconnect
        ? { public_id: this.#publicId, reconnect_org_connection_id: target.reconnect }
        : {
          public_id: this.#publicId,
          brand_id: target.brand && target.brand.id,
          portal_id: target.portal && target.portal.id,
          endpoint_id: target.endpoint && target.endpoint.id,
          external_id: this.#attr('external-id'),
          external_state: this.#attr('external-state'),
        };
      const path = target.reconnect ? 'v1/bridge/reconnect' : 'v1/bridge/connect';
      const url = new URL(path, this.#apiBase);
      for (const [key, value] of Object.entries(params)) {
        if (value) url.searchParams.set(key, value);
      }
      if (made) url.searchParams.set('result_challenge', made.challenge);
      const left = Math.max(0, window.screenX + (window.outerWidth - POPUP_WIDTH) / 2);
      const top = Math.max(0, window.screenY + (window.outerHeight - POPUP_HEIGHT) / 2);
      // No "noopener": the callback page needs window.opener to report back.
      const popup = window.open(
        url.href, this.#popupName,
        `popup=yes,width=${POPUP_WIDTH},height=${POPUP_HEIGHT},` +
          `left=${Math.round(left)},top=${Math.round(top)}`,
      );
      if (!popup) {
        this.#showPopupBlocked(target);
        return;
      }
      const now = Date.now();
      const attempt = {
        target,
        handle: made ? made.handle : null,
        settled: false,
        polling: Boolean(made),
        inFlight: false,
        startedAt: now,
        closedAt: 0,
        deadline: now + RESULT_POLL_LIMIT_MS,
        timer: 0,
        graceTimer: 0,
        notFinishedShown: false,
      };
      this.#popup = popup;
      this.#attempt = attempt;
      this.#popupTimer = setInterval(() => this.#checkPopup(), POPUP_POLL_MS);
      this.#schedulePoll(attempt, RESULT_POLL_MS);
      this.#emit(EVENT.CONNECTION_PENDING, this.#targetIds(target));
      this.#showPending(target);
    }

    /** What patient.connection_pending carries (Fasten's fields); connection_failed adds the
     *  error. org_connection_id is set only when reconnecting. */
    #targetIds(target) {
      return {
        public_id: this.#publicId,
        brand_id: (target.brand && target.brand.id) || null,
        portal_id: (target.portal && target.portal.id) || null,
        endpoint_id: (target.endpoint && target.endpoint.id) || null,
        external_id: this.#attr('external-id'),
        external_state: this.#attr('external-state'),
        org_connection_id: target.reconnect || null,
      };
    }

    #targetName(target) {
      return text(target.brand && target.brand.name) || 'your health system';
    }

    #showPending(target) {
      const name = this.#targetName(target);
      const show = button('Show the sign-in window', () => {
        if (this.#popup && !this.#popup.closed) this.#popup.focus();
      });
      const cancel = button('Cancel', () => {
        this.#closePopup();
        this.#afterAttempt();
      });
      this.#showView(`Sign in at ${name}`, [
        h('p', {
          text: 'A sign-in window is open. Sign in there and agree to share your records; ' +
            'this window updates when you are done.',
        }),
        h('div', { class: 'spinner', 'aria-hidden': 'true' }),
        h('div', { class: 'actions' }, show, cancel),
      ], { announce: `Waiting for you to sign in at ${name}.` });
    }

    #showPopupBlocked(target) {
      const retry = button('Try again', () => this.#connect(target), 'primary');
      this.#showView('Sign-in window blocked', [
        h('p', { class: 'alert', role: 'alert', text: POPUP_BLOCKED_TEXT }),
        h('div', { class: 'actions' }, retry, this.#backButton()),
      ], { focus: retry });
    }

    #backButton() {
      return button('Choose another health system', () => this.#returnToSearch());
    }

    /** The search view as the patient left it (searching again if its results are missing or
     *  were abandoned half-way). */
    #returnToSearch() {
      this.#showSearch();
      if (this.#search.results.length === 0 || this.#searchStale) this.#runSearch();
    }

    /** Drops any scheduled or in-flight search, so its answer cannot overwrite another view. */
    #stopSearching() {
      clearTimeout(this.#searchTimer);
      this.#searchSeq++;
      if (this.#searchBusy) this.#searchStale = true;
      this.#searchBusy = false;
    }

    /** A popup that looks closed may be closed, or only cut off from this page by the portal's
     *  Cross-Origin-Opener-Policy while the patient is still signing in: ask the platform. */
    #checkPopup() {
      const attempt = this.#attempt;
      if (!attempt || !this.#popup || !this.#popup.closed) return;
      clearInterval(this.#popupTimer);
      attempt.closedAt = Date.now();
      if (attempt.polling) this.#schedulePoll(attempt, 0);
      attempt.graceTimer = setTimeout(
        () => this.#showNotFinished(attempt),
        attempt.polling ? RESULT_CLOSE_GRACE_MS : POPUP_CLOSE_GRACE_MS,
      );
    }

    #showNotFinished(attempt) {
      if (this.#attempt !== attempt || attempt.settled) return;
      if (!attempt.polling) this.#attempt = null; // nothing can report this attempt any more
      if (attempt.notFinishedShown) return;
      attempt.notFinishedShown = true;
      clearTimeout(attempt.graceTimer);
      this.#popup = null;
      if (!this.#ui.dialog.open) return;
      const { target } = attempt;
      const name = this.#targetName(target);
      const text = attempt.polling
        ? `The sign-in window for ${name} was closed, or this page can no longer see it. ` +
          'If you are still signing in there, finish and this page will update.'
        : `The sign-in window for ${name} was closed before you finished.`;
      this.#showView('Sign-in not finished', [
        h('p', { text }),
        h('div', { class: 'actions' },
          button('Try again', () => this.#connect(target), 'primary'),
          button('Choose another health system', () => {
            this.#closePopup();
            this.#returnToSearch();
          })),
      ], {
        announce: attempt.polling
          ? 'Sign-in not finished. This page is still waiting in case it does.'
          : 'The sign-in window was closed before you finished.',
      });
    }

    #closePopup() {
      clearInterval(this.#popupTimer);
      if (this.#popup && !this.#popup.closed) this.#popup.close();
      this.#popup = null;
      const attempt = this.#attempt;
      if (attempt) {
        attempt.polling = false;
        clearTimeout(attempt.timer);
        clearTimeout(attempt.graceTimer);
      }
      this.#attempt = null;
    }

    // ---- the result handle: the fallback when the popup cannot post its result ------------------

    #schedulePoll(attempt, delay) {
      clearTimeout(attempt.timer);
      // An answer on its way schedules the next poll itself.
      if (attempt.polling && !attempt.inFlight) {
        attempt.timer = setTimeout(() => this.#pollResult(attempt), delay);
      }
    }

    #pollDelay(attempt) {
      const now = Date.now();
      if (attempt.closedAt && now - attempt.closedAt < RESULT_CLOSE_GRACE_MS) {
        return RESULT_CLOSE_POLL_MS;
      }
      return now - attempt.startedAt < RESULT_POLL_FAST_FOR_MS ? RESULT_POLL_MS : RESULT_POLL_SLOW_MS;
    }

    async #pollResult(attempt) {
      if (this.#attempt !== attempt || !attempt.polling || attempt.inFlight) return;
      attempt.inFlight = true;
      let data = null;
      let problem = null;
      try {
        data = await this.#api(
          'POST', RESULT_PATH, { public_id: this.#publicId }, { result_handle: attempt.handle },
        );
      } catch (error) {
        problem = error;
      }
      attempt.inFlight = false;
      // Settled by the popup's message meanwhile, or abandoned: this answer is not used.
      if (this.#attempt !== attempt || attempt.settled || !attempt.polling) return;
      if (data && (data.status === 'success' || data.status === 'failed')) {
        this.#settle(attempt, data);
        return;
      }
      if (data && Number.isFinite(data.expires_in)) {
        attempt.deadline = Math.min(attempt.deadline, Date.now() + (data.expires_in + 5) * 1000);
      }
      if ((problem && !this.#pollMayGoOn(attempt, problem)) || Date.now() >= attempt.deadline) {
        this.#stopPolling(attempt);
        return;
      }
      this.#schedulePoll(attempt, this.#pollDelay(attempt));
    }

    /** Network trouble, rate limits and server errors pass. So does a handle the platform does
     *  not know yet (the popup's connect request may still be running) until the popup closes;
     *  anything else (used, expired, refused) ends polling. */
    #pollMayGoOn(attempt, problem) {
      if (problem.code === 'network_error' || problem.status === 429 || problem.status >= 500) {
        return true;
      }
      if (problem.code === 'result_handle_unknown') {
        return !attempt.closedAt || Date.now() - attempt.closedAt < RESULT_CLOSE_GRACE_MS;
      }
      return false;
    }

    #stopPolling(attempt) {
      attempt.polling = false;
      clearTimeout(attempt.timer);
      // The popup's message is all that is left; without a popup, nothing is.
      if (attempt.closedAt) this.#showNotFinished(attempt);
    }

    /** The one place an attempt ends with a result, whichever path brought it. */
    #settle(attempt, payload) {
      if (!attempt || this.#attempt !== attempt || attempt.settled) return;
      attempt.settled = true;
      this.#closePopup();
      if (payload.status === 'success') this.#onConnected(attempt.target, payload);
      else this.#onFailed(attempt.target, payload);
    }

    /** The callback page's report; arrow function so add/removeEventListener see one identity. */
    #onMessage = (event) => {
      if (!this.#popup || event.source !== this.#popup || event.origin !== this.#apiOrigin) return;
      const message = event.data;
      if (!message || typeof message !== 'object' || message.source !== 'ehiconnect'
        || message.type !== 'connection_result') return;
      const payload = message.payload && typeof message.payload === 'object' ? message.payload : {};
      this.#settle(this.#attempt, payload);
    };

    #onConnected(target, payload) {
      const ids = this.#targetIds(target);
      const event = {};
      for (const field of ACCOUNT_FIELDS) event[field] = payload[field] ?? ids[field] ?? null;
      event.external_id = ids.external_id;
      event.external_state = ids.external_state;
      // A reconnect keeps its id, so it replaces rather than adds.
      this.#accounts = this.#accounts
        .filter((account) => account.event.org_connection_id !== event.org_connection_id);
      this.#accounts.push({ event, name: this.#targetName(target), target });
      this.#emit(EVENT.CONNECTION_SUCCESS, event);
      if (!this.#ui.dialog.open) return;

      const done = button('Done', () => this.close(), 'primary');
      const another = button('Connect another health system', () => this.#returnToSearch());
      const name = this.#targetName(target);
      this.#showView(`Connected to ${name}`, [
        h('p', {
          text: 'Your records will be shared with this app. ' +
            'You can connect another health system, or finish.',
        }),
        h('ul', { class: 'connected', 'aria-label': 'Connected health systems' },
          this.#accounts.map((account) => h('li', { text: account.name }))),
        h('div', { class: 'actions' }, target.reconnect ? null : another, done),
      ], { focus: done, announce: `Connected to ${name}.` });
    }

    #onFailed(target, payload) {
      const error = text(payload.error) || 'connection_failed';
      const description =
        text(payload.error_description) || 'The health system did not complete the sign-in.';
      this.#emit(EVENT.CONNECTION_FAILED, {
        ...this.#targetIds(target), error, error_description: description,
      });
      if (!this.#ui.dialog.open) return;
      const name = this.#targetName(target);
      const retry = button('Try again', () => this.#connect(target), 'primary');
      this.#showView(`Couldn’t connect to ${name}`, [
        h('p', { class: 'alert', role: 'alert', text: description }),
        h('div', { class: 'actions' }, retry, target.reconnect ? null : this.#backButton()),
      ], { focus: retry });
    }

    /** After a cancelled attempt: back to where the patient chose. */
    #afterAttempt() {
      if (this.#attr('reconnect-org-connection-id')) this.#showReconnect();
      else this.#returnToSearch();
    }
  }

  // One class per name: a custom element constructor can be registered under one name only.
  for (const [position, tag] of TAGS.entries()) {
    if (!customElements.get(tag)) {
      customElements.define(tag, position === 0 ? EhiStitchElement : class extends EhiStitchElement {});
    }
  }
})();
