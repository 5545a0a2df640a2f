// The cadfleet viewer: API key, upload, the model list with live progress, and a model opened
// through a streaming session, drawn part by part as the frames arrive.
//
// State for tests and people is on <body>: data-stream (idle, connecting, streaming, resuming,
// complete, error), data-parts (whole parts received), data-node, data-first-geometry-ms and
// data-full-ms.
import type { ManifestLike, ManifestMessage } from '../../app/src/streamer/protocol';
import { ApiError, type ModelView as ModelInfo, api, apiKey, followEvents } from './api';
import { type PickedFile, droppedFiles, pickedFiles, uploadable } from './files';
import { withRetryAfter } from './retry';
import { ModelView } from './scene';
import { ModelStream } from './stream';

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const body = document.body;
const view = new ModelView($<HTMLCanvasElement>('view'));

const formatBytes = (n: number): string => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`);

function message(text: string | null): void {
  const el = $('message');
  el.hidden = !text;
  el.textContent = text ?? '';
}

// ---------------------------------------------------------------------------------------------
// Key

function showKeyForm(error = ''): void {
  $('key-form').hidden = false;
  $('app').hidden = true;
  $('forget-key').hidden = true;
  $('key-error').textContent = error;
}

async function start(): Promise<void> {
  if (!apiKey.get()) return showKeyForm();
  try {
    await refreshModels();
    followModels();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      apiKey.clear();
      return showKeyForm(err.message);
    }
    throw err;
  }
  $('key-form').hidden = true;
  $('app').hidden = false;
  $('forget-key').hidden = false;
}

$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  apiKey.set($<HTMLInputElement>('key').value.trim());
  void start();
});
$('forget-key').addEventListener('click', () => {
  apiKey.clear();
  location.reload();
});

// ---------------------------------------------------------------------------------------------
// Models

let models: ModelInfo[] = [];
let openModel: string | undefined;
let refreshTimer: number | undefined;
/** Where the list goes on, while older models than those shown exist. */
let nextPage: string | undefined;

function renderModels(): void {
  const list = $('models');
  list.replaceChildren(
    ...models.map((m) => {
      const li = document.createElement('li');
      li.dataset.id = m.id;
      li.dataset.state = m.state;
      li.className = m.id === openModel ? 'open' : '';
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = m.name;
      name.title = `${m.name}${m.root ? `, opened at ${m.root}` : ''} (${formatBytes(m.size)})${m.reusedFrom ? ', reused an earlier conversion of the same file' : ''}`;
      const state = document.createElement('span');
      state.className = `state ${m.state}`;
      state.textContent = m.state === 'ready' ? (m.stats ? `${m.stats.triangles.toLocaleString()} triangles` : 'ready') : m.state === 'failed' ? 'failed' : `${m.state} ${m.progress}%`;
      if (m.error) state.title = m.error;
      li.append(name);
      if (m.state === 'ready') {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = 'View';
        button.className = 'view';
        button.addEventListener('click', () => void openStream(m));
        li.append(button, state);
      } else {
        li.append(state);
        if (m.state !== 'failed') {
          const bar = document.createElement('progress');
          bar.max = 100;
          bar.value = m.progress;
          li.append(bar);
        }
      }
      return li;
    }),
  );
}

/**
 * The list once, then kept current by the project's event stream (no polling): each event carries
 * the model as the API shows it. A reconnect after a drop lists again, then follows from where it was.
 */
async function refreshModels(): Promise<void> {
  window.clearTimeout(refreshTimer);
  const { models: listed, next } = await api.listModels();
  // An event may have brought a newer state while the list was on its way: keep the newer one.
  const known = new Map(models.map((m) => [m.id, m]));
  const fresh = listed.map((m) => {
    const k = known.get(m.id);
    return k && k.updatedAt > m.updatedAt ? k : m;
  });
  // Older pages loaded before stay, with the cursor after them; without them, the first page's.
  const oldest = listed.at(-1);
  const ids = new Set(listed.map((m) => m.id));
  const older = next && oldest ? models.filter((m) => !ids.has(m.id) && m.createdAt < oldest.createdAt) : [];
  if (!older.length) nextPage = next;
  models = [...fresh, ...older];
  renderModels();
  showMore();
}

// The next page loads as the list is scrolled to its end (or on the button, without scrolling).
let loadingMore = false;
async function loadMore(): Promise<void> {
  if (loadingMore || !nextPage) return;
  loadingMore = true;
  try {
    const { models: page, next } = await api.listModels(nextPage);
    const ids = new Set(models.map((m) => m.id));
    models.push(...page.filter((m) => !ids.has(m.id)));
    nextPage = next;
    renderModels();
  } finally {
    loadingMore = false;
    showMore();
  }
}

const more = $<HTMLButtonElement>('models-more');
function showMore(): void {
  more.hidden = !nextPage;
  document.body.dataset.modelsListed = String(models.length);
}
more.addEventListener('click', () => void loadMore().catch(() => undefined));
// Within 200 px of the side panel's end: the button is in view, the next page comes.
new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting)) void loadMore().catch(() => undefined);
}, { root: $('side'), rootMargin: '0px 0px 200px 0px' }).observe(more);

let following: AbortController | undefined;
function followModels(): void {
  following?.abort();
  following = new AbortController();
  void followEvents(
    (event) => {
      const at = models.findIndex((m) => m.id === event.model.id);
      if (event.type === 'model.deleted') {
        if (at >= 0) models.splice(at, 1);
      } else if (at >= 0) {
        // Events may overtake each other only across reconnects; never step back.
        const known = models[at]!;
        if (!(known.state === 'ready' && event.model.state !== 'ready')) models[at] = event.model;
      } else models.unshift(event.model);
      document.body.dataset.events = String(Number(document.body.dataset.events ?? 0) + 1);
      renderModels();
    },
    following.signal,
    () => {
      // (Re)connected: list once more, so that what happened before the stream is shown too.
      document.body.dataset.eventStream = 'open';
      void refreshModels().catch(() => undefined);
    },
  ).catch(() => {
    // The key stopped working: fall back to a slow poll until the page is reloaded.
    refreshTimer = window.setTimeout(() => void refreshModels().catch(() => undefined), 5000);
  });
}

const UPLOAD_ATTEMPTS = 5;

// What the next Upload sends: the files picked (input, folder input or a drop) and, after the api
// asked which file of an archive to open, the one chosen.
let picked: PickedFile[] = [];
const rootSelect = $<HTMLSelectElement>('root');

function pick(files: PickedFile[]): void {
  picked = files;
  rootSelect.hidden = true;
  rootSelect.replaceChildren();
  $('upload-status').textContent = files.length > 1 ? `${files.length} files, sent as one .zip` : files[0] ? files[0].file.name : '';
}

$<HTMLInputElement>('file').addEventListener('change', (e) => pick(pickedFiles((e.target as HTMLInputElement).files!)));
$<HTMLInputElement>('folder').addEventListener('change', (e) => pick(pickedFiles((e.target as HTMLInputElement).files!)));
const dropZone = $('upload-form');
dropZone.addEventListener('dragover', (e) => {
  e.preventDefault();
  dropZone.classList.add('dragging');
});
dropZone.addEventListener('dragleave', () => dropZone.classList.remove('dragging'));
dropZone.addEventListener('drop', (e) => {
  e.preventDefault();
  dropZone.classList.remove('dragging');
  if (e.dataTransfer) void droppedFiles(e.dataTransfer.items).then(pick);
});

$('upload-form').addEventListener('submit', (e) => {
  e.preventDefault();
  if (picked.length === 0) return;
  const files = picked;
  const root = rootSelect.hidden ? undefined : rootSelect.value;
  const progress = $<HTMLProgressElement>('upload-progress');
  const status = $('upload-status');
  progress.hidden = false;
  const quality = $<HTMLSelectElement>('quality').value;
  let countdown: number | undefined;
  // A 429 (the LB's rate limit) or a 503 (a dependency down) says when to come back: wait that
  // long, counting down, and send the file again, a few times at most.
  void uploadable(files)
    .then((file) =>
      withRetryAfter(
        () => {
          window.clearInterval(countdown);
          progress.value = 0;
          status.textContent = `uploading ${file.name} (${formatBytes(file.size)})`;
          return api.upload(file, quality, (f) => (progress.value = f), root);
        },
        {
          attempts: UPLOAD_ATTEMPTS,
          maxWaitMs: 60_000,
          onWait: (ms, err, attempt) => {
            const until = Date.now() + ms;
            const show = (): void => {
              status.textContent = `${err.message}; sending it again in ${Math.max(0, Math.ceil((until - Date.now()) / 1000))} s (try ${attempt + 1} of ${UPLOAD_ATTEMPTS})`;
            };
            show();
            countdown = window.setInterval(show, 1000);
          },
        },
      ),
    )
    .then((model) => {
      $<HTMLFormElement>('upload-form').reset();
      pick([]);
      status.textContent = model.reusedFrom ? `uploaded ${model.name}: the same file was converted before, ready at once` : `uploaded ${model.name}`;
      return refreshModels();
    })
    .catch((err: unknown) => {
      if (err instanceof ApiError && err.candidates.length > 0) {
        // The archive holds several models: let the user choose, then Upload again.
        rootSelect.replaceChildren(...err.candidates.map((c) => Object.assign(document.createElement('option'), { value: c, textContent: c })));
        rootSelect.hidden = false;
        status.textContent = 'the archive holds several models: choose the one to open and press Upload again';
        return;
      }
      status.textContent = err instanceof Error ? err.message : String(err);
    })
    .finally(() => {
      window.clearInterval(countdown);
      progress.hidden = true;
    });
});

// ---------------------------------------------------------------------------------------------
// Part tree

let manifest: ManifestLike | undefined;

function descendants(id: string): string[] {
  const byId = new Map(manifest!.parts.map((p) => [p.id, p]));
  const out: string[] = [];
  const walk = (p: string): void => {
    out.push(p);
    for (const c of byId.get(p)?.children ?? []) walk(c);
  };
  walk(id);
  return out;
}

function renderTree(m: ManifestLike): void {
  const byId = new Map(m.parts.map((p) => [p.id, p]));
  const item = (id: string): HTMLLIElement => {
    const p = byId.get(id)!;
    const li = document.createElement('li');
    const label = document.createElement('label');
    label.dataset.part = id;
    if (p.meshes.length) label.className = 'pending';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.checked = true;
    box.addEventListener('change', () => {
      view.setVisible(descendants(id), box.checked);
      li.querySelectorAll<HTMLInputElement>('input[type=checkbox]').forEach((b) => (b.checked = box.checked));
    });
    label.append(box);
    if (p.color) {
      const swatch = document.createElement('span');
      swatch.className = 'swatch';
      swatch.style.background = p.color;
      label.append(swatch);
    }
    const tri = document.createElement('span');
    tri.className = 'tri';
    tri.textContent = p.triangles.toLocaleString();
    label.append(` ${p.name} `, tri);
    li.append(label);
    if (p.children.length) {
      const ul = document.createElement('ul');
      ul.append(...p.children.map(item));
      li.append(ul);
    }
    return li;
  };
  $('parts').replaceChildren(...m.roots.map(item));
  $('parts-title').hidden = false;
}

function markPart(id: string, received: boolean): void {
  const label = document.querySelector<HTMLElement>(`#parts label[data-part="${id}"]`);
  if (label) label.className = received ? '' : 'pending';
}

// ---------------------------------------------------------------------------------------------
// Streaming

let stream: ModelStream | undefined;

async function openStream(model: ModelInfo): Promise<void> {
  stream?.stop();
  await view.ready;
  openModel = model.id;
  renderModels();
  view.clear();
  manifest = undefined;
  $('parts').replaceChildren();
  message(null);
  const t0 = performance.now();
  let bytes = 0;
  let triangles = 0;
  let firstMs: number | undefined;
  let total: ManifestMessage | undefined;
  const hud = $('hud');
  const show = (): void => {
    hud.hidden = false;
    const parts = s.have.size;
    hud.textContent = [
      `${model.name} · ${s.node ?? ''}`,
      total ? `${parts}/${total.order.length} parts · ${triangles.toLocaleString()} triangles · ${formatBytes(bytes)}` : '',
      firstMs !== undefined ? `first geometry ${Math.round(firstMs)} ms` : '',
      body.dataset.fullMs ? `full model ${body.dataset.fullMs} ms` : '',
    ]
      .filter(Boolean)
      .join(' · ');
    body.dataset.parts = String(parts);
  };
  for (const k of ['parts', 'node', 'firstGeometryMs', 'fullMs']) delete body.dataset[k];
  const s: ModelStream = new ModelStream(model.id, {
    manifest(m) {
      body.dataset.node = m.node;
      if (!manifest) {
        manifest = m.manifest;
        total = m;
        renderTree(m.manifest);
        view.fit(m.manifest);
      }
      show();
    },
    frame(header, data) {
      triangles += view.addFrame(header, data);
      bytes += data.length;
      if (firstMs === undefined) {
        firstMs = performance.now() - t0;
        body.dataset.firstGeometryMs = String(Math.round(firstMs));
      }
      if (header.chunk + 1 === header.chunks) markPart(header.part, true);
      show();
    },
    discard(parts) {
      for (const p of parts) {
        view.dropPart(p);
        markPart(p, false);
      }
    },
    complete() {
      body.dataset.fullMs = String(Math.round(performance.now() - t0));
      show();
    },
    state(state, detail) {
      if (stream !== s) return;
      body.dataset.stream = state;
      if (state === 'error') message(detail);
      else if (state === 'resuming') hud.title = detail;
      show();
    },
  });
  stream = s;
  body.dataset.stream = 'connecting';
  await s.start();
}

// For the browser test and the screenshot: render now and report what the canvas shows.
Object.assign(window, { cadfleetViewer: { view, renderNow: () => view.renderNow() } });

void start();
